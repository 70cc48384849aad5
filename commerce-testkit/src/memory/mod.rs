//! In-memory fakes of the ports: fit for host applications' tests and for the embedded demo wiring.

mod fakes;
mod faults;
mod gateway;
mod offline_queue;
mod stores;

pub use fakes::{
    FixedRateTax, FlatRateCarrier, MemoryTerminal, MemoryTransport, VirtualDrawer, VirtualPrinter, render_receipt,
};
pub use faults::FailingLedger;
pub use gateway::{GatewayFault, MemoryGateway};
pub use offline_queue::MemoryOfflineQueueStore;
pub use stores::{
    MemoryDomainClaimStore, MemoryIdempotencyStore, MemoryLedger, MemoryPairingStore, MemoryPaymentIntentStore,
    MemoryPrintJobStore, MemoryReplicationStore, MemoryWebhookEventStore, memory_store_set,
};
