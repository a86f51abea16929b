//! Runnable applications built with keyward; see the `examples/` directory of the repository.
