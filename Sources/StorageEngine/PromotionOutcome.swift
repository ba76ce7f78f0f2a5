/// What a request to promote a backup to primary did (POST /v1/promote,
/// `ReplicationNode.promote(reason:)`).
public enum PromotionOutcome: Sendable, Equatable {
    /// This backup is now a primary of `epoch`: 200 `{"role":"primary","epoch":N}`.
    case promoted(epoch: UInt64)
    /// It already was a primary: 200, the same body.
    case alreadyPrimary(epoch: UInt64)
    /// It cannot be promoted (say why): 409 `{"error":"…"}`.
    case refused(String)
}
