//! YAML with source positions: a parser that keeps byte ranges ([`tree`]) and an editor that applies
//! JSON patches by replacing only the bytes that change ([`edit`]).

pub(crate) mod edit;
pub(crate) mod tree;
