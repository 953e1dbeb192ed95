//! The workers' containers as the supervisor sees them at each look: one
//! list request for the session's containers, and a full inspect (restart
//! count, exit code, GPU requests) only of a container whose state changed
//! since it was last inspected or that the list does not show, and of every
//! one at each stats look. Eight inspects a second were the largest part of
//! a look's CPU; a list answers what a look decides on (running or not).

use crate::docker::{ContainerState, Docker, DockerError};
use crate::host::{LABEL_HOME, LABEL_SESSION};

/// Each worker's container as last inspected.
#[derive(Default)]
pub struct ContainerWatch {
    inspected: Vec<Option<ContainerState>>,
}

impl ContainerWatch {
    /// The state of each of `ids` (the session's workers, in order): `None`
    /// for a container that no longer exists. `refresh`: inspect every one.
    pub fn look(
        &mut self,
        docker: &Docker,
        home_label: &str,
        session_id: &str,
        ids: &[String],
        refresh: bool,
    ) -> Result<Vec<Option<ContainerState>>, DockerError> {
        self.inspected.resize(ids.len(), None);
        let listed =
            docker.list_with_labels(&[(LABEL_HOME, home_label), (LABEL_SESSION, session_id)])?;
        let stale: Vec<usize> = ids
            .iter()
            .zip(&self.inspected)
            .enumerate()
            .filter(|(_, (id, inspected))| {
                let now = listed.iter().find(|summary| summary.id == **id);
                let unchanged = matches!((now, inspected),
                    (Some(now), Some(then)) if then.id == now.id && then.status == now.state);
                refresh || !unchanged
            })
            .map(|(index, _)| index)
            .collect();
        if !stale.is_empty() {
            let stale_ids: Vec<String> = stale.iter().map(|&i| ids[i].clone()).collect();
            for (index, state) in stale.into_iter().zip(docker.inspect_all(&stale_ids)?) {
                self.inspected[index] = state;
            }
        }
        Ok(self.inspected.clone())
    }
}
