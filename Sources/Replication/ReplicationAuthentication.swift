import WireProtocol

/// The challenge–response both sides of a replication connection run before the hello when a
/// token is set (`-repl-token-file`). Mutual: each proves it knows the token, and neither sends it.
///
/// The exchange, in order:
/// 1. Backup → primary: `authChallenge(nonce: Nb)`, Nb fresh random bytes.
/// 2. Primary → backup: `authResponse(nonce: Np, proof: HMAC(token, "…primary" | Nb | Np))`, Np
///    fresh random bytes.
/// 3. The backup checks the primary's proof (constant time); on a mismatch it sends a refusal
///    (`unauthenticated`) and closes. Otherwise, backup → primary:
///    `authProof(HMAC(token, "…backup" | Nb | Np))`.
/// 4. The primary checks it (constant time); on a mismatch it refuses and closes. Only then does
///    it read a hello.
/// Why it holds: each proof covers both nonces, so one recorded from another connection does not
/// verify (replay); each side's proof has its own label, so a peer cannot send the other side's
/// proof back as its own (reflection); the primary accepts no frame but these before step 4, and
/// changes no state before it. What it does not do: encrypt, or bind the proof to the TCP stream
/// (a relay in the middle can pass the exchange through); put stunnel around it for that.
enum ReplicationAuthentication {
    static let primaryLabel = Array("small-db replication v1: primary proof".utf8)
    static let backupLabel = Array("small-db replication v1: backup proof".utf8)

    /// A fresh nonce from the system's random source (getrandom(2)).
    static func freshNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var nonce: [UInt8] = []
        nonce.reserveCapacity(ReplicationProtocol.nonceSize)
        while nonce.count < ReplicationProtocol.nonceSize {
            let word: UInt64 = generator.next()
            for shift in stride(from: 0, to: 64, by: 8) { nonce.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        return Array(nonce.prefix(ReplicationProtocol.nonceSize))
    }

    /// HMAC(token, label | backup nonce | primary nonce).
    static func proof(_ token: ReplicationToken, label: [UInt8], backupNonce: [UInt8], primaryNonce: [UInt8]) -> [UInt8] {
        HMACSHA256.authenticationCode(key: token.bytes, message: label + backupNonce + primaryNonce)
    }

    /// Steps 2 and 4, the primary's side, once the backup's first frame (`first`) has arrived.
    /// Returns nil once the backup has proved it knows the token, else the refusal sent (the
    /// caller closes the connection and logs it).
    static func authenticateBackup(
        first: ReplicationFrame, over connection: any ReplicationConnection, token: ReplicationToken,
        receiveWithin remaining: () -> Duration
    ) -> AuthenticationFailure? {
        guard case .authChallenge(let backupNonce) = first else {
            return AuthenticationFailure(
                refusal: Refusal(code: .unauthenticated, message: "this primary requires authentication: start the backup with -repl-token-file"),
                logLine: "it sent \(first.kind) without authenticating (is -repl-token-file missing on the backup?)")
        }
        let primaryNonce = freshNonce()
        do throws(TransportError) {
            try connection.send(.authResponse(
                nonce: primaryNonce, proof: proof(token, label: primaryLabel, backupNonce: backupNonce, primaryNonce: primaryNonce)))
            let answer = try connection.receive(timeout: remaining())
            switch answer {
            case .authProof(let received):
                let expected = proof(token, label: backupLabel, backupNonce: backupNonce, primaryNonce: primaryNonce)
                guard constantTimeEquals(received, expected) else {
                    return AuthenticationFailure(
                        refusal: Refusal(code: .unauthenticated, message: "authentication failed: your -repl-token-file differs from this primary's"),
                        logLine: "its proof does not match this primary's token (a different -repl-token-file?)")
                }
                return nil
            case .refuse(let refusal):
                return AuthenticationFailure(
                    refusal: nil, logLine: "it refused this primary's proof: \(refusal.message.sanitizedForLog) (a different -repl-token-file?)")
            default:
                return AuthenticationFailure(
                    refusal: Refusal(code: .protocolViolation, message: "expected an authProof"),
                    logLine: "it sent \(answer.kind) where its proof was expected")
            }
        } catch {
            return AuthenticationFailure(refusal: nil, logLine: "authentication failed: \(error)")
        }
    }

    /// Steps 1 and 3, the backup's side. Returns once the primary has proved it knows the token
    /// and this backup's proof is sent; throws why not (a refusal is sent where one is due).
    static func authenticatePrimary(
        over connection: any ReplicationConnection, token: ReplicationToken, timeout: Duration
    ) throws(ReplicationFailure) {
        let backupNonce = freshNonce()
        let response: ReplicationFrame
        do throws(TransportError) {
            try connection.send(.authChallenge(nonce: backupNonce))
            response = try connection.receive(timeout: timeout)
        } catch {
            throw failure(error)
        }
        switch response {
        case .authResponse(let primaryNonce, let received):
            let expected = proof(token, label: primaryLabel, backupNonce: backupNonce, primaryNonce: primaryNonce)
            guard constantTimeEquals(received, expected) else {
                try? connection.send(.refuse(Refusal(
                    code: .unauthenticated, message: "authentication failed: your -repl-token-file differs from this backup's")))
                throw ReplicationFailure("the primary's proof does not match -repl-token-file (a different token?): refused it")
            }
            do throws(TransportError) {
                try connection.send(.authProof(proof(token, label: backupLabel, backupNonce: backupNonce, primaryNonce: primaryNonce)))
            } catch {
                throw failure(error)
            }
        case .refuse(let refusal):
            throw ReplicationFailure("the primary refused to authenticate: \(refusal.message.sanitizedForLog)")
        case let other:
            throw ReplicationFailure("the primary sent \(other.kind) instead of authenticating")
        }
    }

    private static func failure(_ error: TransportError) -> ReplicationFailure {
        switch error {
        case .peerClosed, .frame(.unknownFrameType):
            // A build without authentication frames drops the connection at the first frame.
            ReplicationFailure("the primary closed the connection when asked to authenticate (is it running without -repl-token-file, or an older version?)")
        default:
            ReplicationFailure("authentication failed: \(error)")
        }
    }
}

/// Why a peer failed to authenticate: the refusal to send it (nil when none is due: it refused us,
/// or the connection failed) and the end of the log line.
struct AuthenticationFailure {
    let refusal: Refusal?
    let logLine: String
}
