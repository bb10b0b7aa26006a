//! Point-in-time restore: choosing the files ([`plan`](mod@plan)), writing the
//! database from them ([`apply`](mod@apply)), putting it at its output without mixing
//! old and new files ([`output`]), and all three over a replica client
//! ([`restore_to`]).
pub mod apply;
pub mod output;
pub mod plan;
pub mod points;

use std::path::Path;
use std::sync::Arc;

pub use apply::{Restored, apply};
pub use output::{
    IntegrityCheck, Overwrite, RestoreOptions, Staged, check_integrity, check_output, sidecars,
    stage, stage_file,
};
pub use plan::{PlanError, Target, plan};

use crate::error::Result;
pub use crate::storage::list_levels;
use crate::storage::list_levels_exact;
use crate::storage::{FileInfo, ReplicaClient};

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
pub(crate) async fn plan_restore(
    client: &dyn ReplicaClient,
    target: Target,
) -> Result<Vec<FileInfo>> {
    Ok(plan(&list_levels_for(client, target).await?, target)?)
}

/// Restores `target` from `client` into `out`, which is replaced
/// ([`Overwrite::Replace`]) once the new database has passed `check`.
pub async fn restore(
    client: Arc<dyn ReplicaClient>,
    target: Target,
    out: &Path,
    check: IntegrityCheck,
) -> Result<Restored> {
    restore_to(
        client,
        target,
        out,
        RestoreOptions::new(Overwrite::Replace, check),
    )
    .await
}

/// Restores `target` from `client` into `out` under `opts`: refused up front if the
/// policy forbids the output, verified on a temporary file, then put in place
/// ([`output`] says in which order, and why).
pub async fn restore_to(
    client: Arc<dyn ReplicaClient>,
    target: Target,
    out: &Path,
    opts: RestoreOptions,
) -> Result<Restored> {
    // Refuse before listing the replica, which can be slow.
    check_output(out, opts.overwrite)?;
    let files = plan_restore(client.as_ref(), target).await?;
    restore_plan_to(client, files, out, opts).await
}

/// Restores the files of a plan made earlier (e.g. shown with `-dry-run`, or checked
/// for a timestamp range) without listing the replica again, replacing `out`.
pub async fn restore_plan(
    client: Arc<dyn ReplicaClient>,
    files: Vec<FileInfo>,
    out: &Path,
    check: IntegrityCheck,
) -> Result<Restored> {
    restore_plan_to(
        client,
        files,
        out,
        RestoreOptions::new(Overwrite::Replace, check),
    )
    .await
}

/// [`restore_plan`] under `opts`.
pub async fn restore_plan_to(
    client: Arc<dyn ReplicaClient>,
    files: Vec<FileInfo>,
    out: &Path,
    opts: RestoreOptions,
) -> Result<Restored> {
    let staged = stage_plan(client, files, out, opts).await?;
    crate::blocking::blocking("restore", move || staged.install()).await
}

/// Writes and verifies the files of a plan beside `out`, without touching `out`:
/// for callers that must do something between verifying and replacing (the app's
/// in-place restore releases its hold on the old database there).
pub(crate) async fn stage_plan(
    client: Arc<dyn ReplicaClient>,
    files: Vec<FileInfo>,
    out: &Path,
    opts: RestoreOptions,
) -> Result<Staged> {
    let out = out.to_owned();
    crate::blocking::blocking("restore", move || {
        let inputs = files
            .iter()
            .map(|f| {
                let name = format!("{} level {} {}", client.describe(), f.level, f.filename());
                Ok((name, client.open(f)?))
            })
            .collect::<Result<Vec<_>>>()?;
        stage(inputs, &out, opts)
    })
    .await
}
