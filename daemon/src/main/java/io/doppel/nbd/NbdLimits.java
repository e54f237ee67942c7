package io.doppel.nbd;

import io.doppel.net.ConnectionGate;

import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntSupplier;

/**
 * The bounds every NBD connection of a node shares: the gate on open connections and accept rate, the
 * largest request a client may send (read when a connection starts, so a reload changes it for new ones),
 * and a count of requests refused for being larger.
 */
public record NbdLimits(ConnectionGate gate, IntSupplier maxRequestBytes, LongAdder oversizedRequests)
{
}
