package io.doppel.bench.storage;

import io.doppel.bench.BenchData;
import io.doppel.bench.ByteCounter;
import io.doppel.storage.ZeroBlocks;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;

/**
 * {@link ZeroBlocks#isZero} over a whole block in a direct little-endian buffer (the volume windows'
 * order), in its two worst cases: a block of zeros, and a block whose only non-zero byte is the last,
 * so both scan every byte.
 *
 * <p>Why: the sender zero-checks every block it ships (zero runs travel as ZERO frames without payload),
 * and sparse images are mostly zeros, so this scan runs over the bulk of a first sync. A block of data
 * usually exits at its first word; these cases bound the cost from above.
 *
 * <p>Results: operations (blocks) per second, and {@code :bytes} in bytes per second (JMH labels it
 * ops/s). Bytes per operation = {@code size}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class ZeroBlocksBenchmark
{
    /** Block size in bytes: the smallest and largest supported blocks. */
    @Param({"4096", "1048576"})
    public int size;

    private ByteBuffer zeros;
    private ByteBuffer lastByteSet;

    @Setup(Level.Trial)
    public void setUp()
    {
        zeros = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN);
        lastByteSet = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN);
        lastByteSet.put(size - 1, (byte)1);
        if (!ZeroBlocks.isZero(zeros, 0, size) || ZeroBlocks.isZero(lastByteSet, 0, size))
        {
            throw new IllegalStateException("ZeroBlocks.isZero gives a wrong answer for size " + size);
        }
    }

    @Benchmark
    public void allZero(final ByteCounter bytes, final Blackhole bh)
    {
        bh.consume(ZeroBlocks.isZero(zeros, 0, size));
        bytes.bytes += size;
    }

    @Benchmark
    public void lastByteNonZero(final ByteCounter bytes, final Blackhole bh)
    {
        bh.consume(ZeroBlocks.isZero(lastByteSet, 0, size));
        bytes.bytes += size;
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(ZeroBlocksBenchmark.class, args);
    }
}
