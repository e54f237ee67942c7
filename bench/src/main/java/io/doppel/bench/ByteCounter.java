package io.doppel.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Counts bytes processed so a throughput run also reports bytes per second, as the secondary result
 * {@code <benchmark>:bytes}. JMH labels that row {@code ops/s}: read it as bytes/s.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.OPERATIONS)
public class ByteCounter
{
    /** Bytes processed in this iteration by this thread. */
    public long bytes;

    @Setup(Level.Iteration)
    public void reset()
    {
        bytes = 0;
    }
}
