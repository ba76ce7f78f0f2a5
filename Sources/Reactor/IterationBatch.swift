/// Items gathered during one event-loop iteration and handed on together at its end: how a
/// front gives its engine every write read in one iteration as one group (one commit round,
/// one sync), not one by one.
///
/// `flush` runs at the iteration's end (step 4 of `EventLoop`), on the loop's thread, with the
/// items in the order they were added, and again as long as flushing added more (answering
/// writes may release requests that waited behind them, whose writes form the next group).
/// Confined to its loop's thread.
public final class IterationBatch<Item> {
    private var items: [Item] = []
    private let flush: ([Item]) -> Void

    /// Must be called on `loop`'s thread.
    public init(loop: EventLoop, flush: @escaping ([Item]) -> Void) {
        self.flush = flush
        loop.addIterationEndHook { [unowned self] in drain() }
    }

    public func append(_ item: Item) { items.append(item) }

    private func drain() {
        while !items.isEmpty {
            let group = items
            items.removeAll(keepingCapacity: true)
            flush(group)
        }
    }
}
