import ServiceLifecycle

extension NanaClient: Service {
    /// Connects, and keeps the connection (reconnecting after every loss) until graceful
    /// shutdown or cancellation; then closes the client and returns. Calls may be made from
    /// any task while it runs, and wait for the first connection like they wait during a
    /// reconnection.
    ///
    /// Put the client before the services that use it in a `ServiceGroup`: the group shuts
    /// services down in reverse order, so the client closes after them.
    ///
    /// - Throws: ``NanaClientError`` when the client was already running (a second `run()`,
    ///   or a client made by `connect`) or closed.
    public func run() async throws {
        guard start() else {
            throw NanaClientError(.connectionClosed, "this client is already running or closed: run() may be called once, on a client made with init")
        }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await maintain(from: nil)
            } onCancel: {
                Task { await self.close() }
            }
        } onGracefulShutdown: {
            Task { await self.close() }
        }
    }
}
