/// A collective that could not complete. Names this rank and, when known, the peer at fault.
public struct CommError: Error, CustomStringConvertible, Equatable {
    public enum Reason: String, Sendable {
        /// A neighbour's connection closed (process died, host unreachable).
        case peerLost = "peer lost"
        /// No progress from a neighbour within the timeout.
        case timeout
        /// A frame that is not the one this rank expected.
        case badFrame = "bad frame"
        /// Another rank failed and told the ring.
        case aborted
        /// Setting up or using the sockets failed.
        case transport
        /// This rank was told to stop (an elastic job changing its world): not a failure.
        case cancelled
    }

    public let reason: Reason
    public let rank: Int
    /// The rank whose failure this is (the lost, silent or misbehaving one), if known.
    public let peer: Int?
    public let message: String

    public init(_ reason: Reason, rank: Int, peer: Int?, _ message: String) {
        self.reason = reason
        self.rank = rank
        self.peer = peer
        self.message = message
    }

    public var description: String {
        "rank \(rank): \(reason.rawValue)\(peer.map { " (rank \($0))" } ?? ""): \(message)"
    }
}
