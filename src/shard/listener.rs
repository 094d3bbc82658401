//! Listening sockets: one per shard on the same address, balanced by the kernel (SO_REUSEPORT).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` listeners to `addr`. With port 0 the first one picks the port and the others
/// join it, so every shard accepts on the same address.
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let listener = bind_one(addr)?;
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
