//! The acknowledgement queue of the file writers: batches wait, in the order they were
//! written, until every row has its final status and every file holding one of their rows is
//! stored; then they go back to the engine, oldest first, which commits them.
//!
//! A row's status is known either when the batch is written (a refusal by the field rules; a
//! row placed in a file whose store is awaited, behind a gate) or later, when the file holding
//! it is settled ([`AckQueue::settle`]).

use std::collections::VecDeque;

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;

use crate::destination::{BatchOutcome, RowStatus};

/// A batch's place in the queue, for settling its rows later.
pub type BatchNumber = u64;

/// A batch whose rows wait.
#[derive(Debug)]
struct Waiting {
    batch: RecordBatch,
    statuses: Vec<Option<RowStatus>>,
    unsettled: usize,
    /// Released only once every file up to this sequence is stored.
    gate: Option<u32>,
}

/// Batches waiting for their acknowledgements, oldest first.
#[derive(Debug, Default)]
pub struct AckQueue {
    waiting: VecDeque<Waiting>,
    /// The number of the oldest waiting batch.
    first: BatchNumber,
    /// Every file up to this sequence is stored.
    stored_through: u32,
}

impl AckQueue {
    /// Queues `batch` with the statuses known now (`None` for a row settled later), released
    /// no earlier than the file `gate` is stored. Returns its number.
    pub fn push(&mut self, batch: RecordBatch, statuses: Vec<Option<RowStatus>>, gate: Option<u32>) -> BatchNumber {
        let number = self.first + self.waiting.len() as u64;
        let unsettled = statuses.iter().filter(|s| s.is_none()).count();
        self.waiting.push_back(Waiting {
            batch,
            statuses,
            unsettled,
            gate,
        });
        number
    }

    /// The number the next batch pushed gets.
    pub fn next_number(&self) -> BatchNumber {
        self.first + self.waiting.len() as u64
    }

    /// Gives `row` of batch `batch` its final status, unless it has one.
    pub fn settle(&mut self, batch: BatchNumber, row: u32, status: &RowStatus) {
        let Some(waiting) = batch
            .checked_sub(self.first)
            .and_then(|index| self.waiting.get_mut(index as usize))
        else {
            return;
        };
        if let Some(slot) = waiting.statuses.get_mut(row as usize)
            && slot.is_none()
        {
            *slot = Some(status.clone());
            waiting.unsettled -= 1;
        }
    }

    /// Every file up to `sequence` is stored.
    pub fn stored_through(&mut self, sequence: u32) {
        self.stored_through = self.stored_through.max(sequence);
    }

    /// Whether no batch waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The batches at the front whose rows are all final and whose files are stored.
    pub fn release(&mut self) -> Vec<BatchOutcome> {
        let mut done = Vec::new();
        while let Some(front) = self.waiting.front() {
            if front.unsettled > 0 || front.gate.is_some_and(|gate| gate > self.stored_through) {
                break;
            }
            if let Some(ready) = self.waiting.pop_front() {
                self.first += 1;
                done.push(BatchOutcome {
                    batch: ready.batch,
                    statuses: ready.statuses.into_iter().flatten().collect(),
                });
            }
        }
        done
    }

    /// After a failure: the released batches, then of each batch still waiting the rows whose
    /// status is final and not behind a gate (what the destination acknowledged must be
    /// committed); the queue is left empty. A batch that cannot be cut is left out: its rows
    /// stay pending, and the next run settles them.
    pub fn drain_final(&mut self) -> Vec<BatchOutcome> {
        let mut acknowledged = self.release();
        let stored_through = self.stored_through;
        for waiting in self.waiting.drain(..) {
            if waiting.gate.is_some_and(|gate| gate > stored_through) {
                continue;
            }
            let final_rows: Vec<u32> = (0..waiting.statuses.len() as u32)
                .filter(|&row| waiting.statuses[row as usize].is_some())
                .collect();
            if final_rows.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(final_rows.clone());
            match take_record_batch(&waiting.batch, &indices) {
                Ok(batch) => {
                    let statuses = final_rows
                        .iter()
                        .filter_map(|&row| waiting.statuses[row as usize].clone())
                        .collect();
                    acknowledged.push(BatchOutcome { batch, statuses });
                }
                Err(error) => tracing::error!(%error, "cannot hand back acknowledged rows"),
            }
        }
        acknowledged
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap()
    }

    fn accepted() -> RowStatus {
        RowStatus::Accepted { destination_id: None }
    }

    #[test]
    fn batches_leave_in_order_once_settled_and_stored() {
        let mut queue = AckQueue::default();
        let first = queue.push(batch(2), vec![None, None], None);
        let second = queue.push(batch(1), vec![Some(accepted())], Some(3));
        assert!(queue.release().is_empty(), "nothing is final yet");
        queue.settle(second, 0, &accepted());
        queue.settle(first, 0, &accepted());
        assert!(queue.release().is_empty(), "the first batch still has a row to settle");
        queue.settle(first, 1, &accepted());
        assert_eq!(queue.release().len(), 1, "the second waits for file 3");
        queue.stored_through(3);
        assert_eq!(queue.release().len(), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_failure_hands_back_only_final_rows() {
        let mut queue = AckQueue::default();
        let first = queue.push(batch(3), vec![None, None, None], None);
        queue.push(batch(2), vec![Some(accepted()), Some(accepted())], Some(1));
        queue.settle(first, 1, &accepted());
        let handed = queue.drain_final();
        assert_eq!(handed.len(), 1, "the gated batch's file was never stored");
        assert_eq!(handed[0].batch.num_rows(), 1);
        assert!(queue.is_empty());
    }
}
