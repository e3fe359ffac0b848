import Foundation
import NanaStorage
import NanaWire

// Client transactions: `begin_transaction`, `commit`, `rollback`, `in_transaction`. The
// session's transaction on each file is a state of the connection (`ConnectionStateMachine`);
// the writer runs BEGIN, COMMIT and ROLLBACK in order with everything else.
extension ConnectionHandler {
    /// The session's open transaction on `database`, if any. One that the daemon rolled back
    /// after its timeout is reported once, to the next call that would have run inside it.
    func transactionOwner(_ database: Database) throws(NanaRemoteError) -> TransactionToken? {
        switch machine.transaction(on: database) {
        case .none: return nil
        case .open(let token): return token
        case .timedOut(let message): throw NanaRemoteError(.transaction, message)
        }
    }

    func inTransaction(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(.bool(try transactionOwner(try table(args).database) != nil)))
    }

    func beginTransaction(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        // As NanaSQLite: a v2 table's writes are staged outside any transaction, so one
        // opened on it would refuse every write it was meant to hold.
        if table.settings.writeBehind != nil {
            throw NanaRemoteError(.transaction, "Explicit transactions are not supported in V2 mode (table '\(table.name)'): writes are staged and flushed in the background. Open the table with v2_mode=False for transactional operations.")
        }
        let database = table.database
        guard try transactionOwner(database) == nil else {
            throw NanaRemoteError(.transaction, "Transaction already in progress. SQLite does not support nested transactions. Please commit or rollback the current transaction first.")
        }
        let token = TransactionToken(timeout: state.configuration.transactionTimeout)
        machine.transactionBegan(token, on: database)
        token.trace("begin_transaction msgid \(msgid) on connection \(connectionID), \(pendingCalls) calls pending")
        startAfterEarlierCalls { [self] in
            token.trace("earlier calls done; connected \(isConnected)")
            guard isConnected else {
                // Gone meanwhile: the BEGIN still runs, so that the ROLLBACK the disconnect
                // queued for this transaction (held by the writer until then) ends it.
                return database.begin(token) { _ in }
            }
            respondLater(msgid, { database.begin(token, completion: $0) }, { _ in .value(.nil) }, then: { handler, _ in
                if token.currentState != .active { handler.machine.transactionEnded(token, on: database) }
                return nil
            })
        }
    }

    func endTransaction(_ msgid: UInt32, _ args: Arguments, commit: Bool) throws(NanaRemoteError) {
        let database = try table(args).database
        guard let token = try transactionOwner(database) else {
            throw NanaRemoteError(.transaction, "No transaction in progress. Call begin_transaction() first.")
        }
        respondLater(msgid, { commit ? database.commit(token, completion: $0) : database.rollback(token, completion: $0) }, { _ in .value(.nil) }, then: { handler, _ in
            handler.machine.transactionEnded(token, on: database)
            return nil
        })
    }

    /// Whether the session has a transaction open (or being opened) on `database`, without
    /// reporting one the daemon ended (as ``transactionOwner(_:)`` does, once).
    func holdsTransaction(on database: Database) -> Bool {
        machine.holdsTransaction(on: database)
    }
}
