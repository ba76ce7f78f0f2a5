/// The state a group-commit round has reached before it is applied: the keys its earlier writes
/// set or deleted, over the map. A condition of a later write in the same round is checked
/// against this, so that it sees every write queued before it (step 2 of `GroupCommitter`).
///
/// Filled only up to the round's last write that has conditions: a round without any costs
/// nothing.
struct RoundOverlay {
    private enum State {
        case absent
        case present(modRevision: UInt64, value: StoredValue)
    }

    private var keys: [Key: State] = [:]

    /// Records `batch`'s changes as committed at `revision`.
    mutating func record(_ batch: WriteBatch, at revision: UInt64) {
        for mutation in batch.mutations {
            switch mutation {
            case .set(let key, let value): keys[key] = .present(modRevision: revision, value: value)
            case .delete(let key): keys[key] = .absent
            }
        }
    }

    /// Every condition of `batch` that does not hold, in order.
    func failedConditions(of batch: WriteBatch, in map: OrderedMap) -> [ConditionFailure] {
        var failures: [ConditionFailure] = []
        for (key, condition) in batch.conditions {
            let state: (modRevision: UInt64, value: StoredValue)?
            switch keys[key] {
            case .absent?: state = nil
            case .present(let modRevision, let value)?: state = (modRevision, value)
            case nil: state = map.entry(key).map { ($0.modRevision, $0.value) }
            }
            if !condition.holds(for: state) {
                failures.append(ConditionFailure(key: key, condition: condition, currentRevision: state?.modRevision ?? 0))
            }
        }
        return failures
    }
}
