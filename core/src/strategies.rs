//! Public proptest strategies (feature `proptest`).
