//! Point-in-time restore: choosing the files ([`plan`]), writing the database from
//! them ([`apply`]), and both over a replica client ([`restore`]).
pub mod apply;
pub mod plan;

use std::path::Path;
use std::sync::Arc;

pub use apply::{IntegrityCheck, Restored, apply, check_integrity};
pub use plan::{PlanError, Target, plan};

use crate::error::{Error, Result};
use crate::replica::{FileInfo, ReplicaClient, SNAPSHOT_LEVEL};

/// Lists every level of `client` (index = level).
pub async fn list_levels(client: &dyn ReplicaClient) -> Result<Vec<Vec<FileInfo>>> {
    let mut levels = Vec::with_capacity(SNAPSHOT_LEVEL as usize + 1);
    for level in 0..=SNAPSHOT_LEVEL {
        levels.push(client.list(level).await?);
    }
    Ok(levels)
}

/// Lists every level of `client` with exact creation times
/// ([`ReplicaClient::list_exact`]): what a restore by time plans from. On S3 this
/// costs a HEAD per file, so the other targets use [`list_levels`].
pub async fn list_levels_exact(client: &dyn ReplicaClient) -> Result<Vec<Vec<FileInfo>>> {
    let mut levels = Vec::with_capacity(SNAPSHOT_LEVEL as usize + 1);
    for level in 0..=SNAPSHOT_LEVEL {
        levels.push(client.list_exact(level).await?);
    }
    Ok(levels)
}

/// The listing a plan for `target` needs: exact creation times for a time target.
pub async fn list_levels_for(
    client: &dyn ReplicaClient,
    target: Target,
) -> Result<Vec<Vec<FileInfo>>> {
    match target {
        Target::Time(_) => list_levels_exact(client).await,
        _ => list_levels(client).await,
    }
}

/// Plans the restore of `target` from `client`.
pub async fn plan_restore(client: &dyn ReplicaClient, target: Target) -> Result<Vec<FileInfo>> {
    Ok(plan(&list_levels_for(client, target).await?, target)?)
}

/// Restores `target` from `client` into `out` (replaced atomically), then runs the
/// integrity check asked for.
pub async fn restore(
    client: Arc<dyn ReplicaClient>,
    target: Target,
    out: &Path,
    check: IntegrityCheck,
) -> Result<Restored> {
    let files = plan_restore(client.as_ref(), target).await?;
    restore_plan(client, files, out, check).await
}

/// Restores the files of a plan made earlier (e.g. shown with `-dry-run`, or checked
/// for a timestamp range) without listing the replica again.
pub async fn restore_plan(
    client: Arc<dyn ReplicaClient>,
    files: Vec<FileInfo>,
    out: &Path,
    check: IntegrityCheck,
) -> Result<Restored> {
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || {
        let inputs = files
            .iter()
            .map(|f| {
                let name = format!("{} level {} {}", client.describe(), f.level, f.filename());
                Ok((name, client.open(f)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let restored = apply(inputs, &out)?;
        check_integrity(&out, check)?;
        Ok::<_, Error>(restored)
    })
    .await
    .expect("restore task panicked")
}
