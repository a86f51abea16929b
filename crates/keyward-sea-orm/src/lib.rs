//! SeaORM key store for keyward.
