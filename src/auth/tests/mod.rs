//! Unit tests of authentication: tokens, API keys, the CONNECT table, HTTP headers, JWKS
//! refresh. Keys are made at test time (see [`fixtures`]).

mod api_keys;
mod connect;
mod fixtures;
mod http;
mod refresh;
mod tokens;
