//! Tideline's replication running inside a test's runtime until stopped, on any replica
//! client: the "tideline" half of the takeover tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tideline_engine::config::DbConfig;
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::storage::ReplicaClient;
use tokio::sync::oneshot;

/// A running replicator of one database; `stop` ends it and returns its events.
pub(crate) struct Tideline {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<tideline_engine::Result<()>>,
    events: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl Tideline {
    pub(crate) fn start(db: &Path, client: Arc<dyn ReplicaClient>) -> Tideline {
        let mut cfg = DbConfig::new(db);
        cfg.monitor_interval = Duration::from_millis(100);
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink: EventSink = {
            let events = Arc::clone(&events);
            Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
        };
        let (tx, rx) = oneshot::channel::<()>();
        let settings = ReplicateSettings {
            once: false,
            shutdown_sync_timeout: Duration::from_secs(10),
            shutdown_sync_interval: Duration::from_millis(100),
            ..ReplicateSettings::default()
        };
        let task = tokio::spawn(replicate_to(
            vec![(cfg, client)],
            settings,
            async move {
                let _ = rx.await;
            },
            sink,
        ));
        Tideline {
            stop: Some(tx),
            task,
            events,
        }
    }

    /// Stops it (bounded), asserting it ended without an error, and returns its events.
    pub(crate) async fn stop(mut self) -> Vec<Event> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops")
            .unwrap()
            .unwrap();
        self.events.lock().unwrap().clone()
    }
}
