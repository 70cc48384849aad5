//! Forwarding impls of a port for `Arc<T>` and `Box<T>`, so wiring built from configuration and wiring
//! written by hand yield the same types (`Arc<dyn PaymentGateway>`, `Box<dyn PaymentGateway>`, ...).

/// Implements a port trait for `Arc<T>` and `Box<T>` by forwarding each listed method to `T`.
/// List the synchronous methods first, then the `async` ones.
macro_rules! forward_port {
    ($trait:ident {
        $(fn $sm:ident(&self $(, $sa:ident : $st:ty)*) -> $sr:ty;)*
        $(async fn $m:ident(&self $(, $a:ident : $t:ty)*) -> $r:ty;)*
    }) => {
        #[async_trait::async_trait]
        impl<T: $trait + ?Sized> $trait for std::sync::Arc<T> {
            $(fn $sm(&self $(, $sa: $st)*) -> $sr { (**self).$sm($($sa),*) })*
            $(async fn $m(&self $(, $a: $t)*) -> $r { (**self).$m($($a),*).await })*
        }
        #[async_trait::async_trait]
        impl<T: $trait + ?Sized> $trait for Box<T> {
            $(fn $sm(&self $(, $sa: $st)*) -> $sr { (**self).$sm($($sa),*) })*
            $(async fn $m(&self $(, $a: $t)*) -> $r { (**self).$m($($a),*).await })*
        }
    };
}

pub(crate) use forward_port;
