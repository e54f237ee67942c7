package io.doppel.bench.pipeline;

import io.doppel.bench.BenchData;
import io.doppel.bench.ByteCounter;
import io.doppel.pipeline.BlockHash;
import io.doppel.pipeline.BlockHasher;
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
import java.util.concurrent.TimeUnit;

/**
 * XXH3-128 over one block held in a direct little-endian buffer, read in place as the sender reads a
 * mapped window: {@code hash} is {@link BlockHash#of(ByteBuffer, int, int)} (hash4j, pure Java, a new
 * {@code HashValue128} per call, used by compares), {@code hasher} is {@link BlockHasher} (the same value
 * left in two fields, used by the encoder and the applier, so nothing is allocated per block).
 *
 * <p>Why: every DATA frame carries the hash of its raw bytes, so the primary hashes every block it ships
 * and the standby hashes every block again after decompressing; a compare pass hashes the whole volume on
 * both sides. The hash is therefore a floor on per-core replication and compare speed.
 *
 * <p>Results: {@code hash} in operations (blocks) per second, and {@code hash:bytes} in bytes per second
 * (JMH labels it ops/s). Bytes per operation = {@code blockSize}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class BlockHashBenchmark
{
    /** Block size in bytes: the smallest and largest supported blocks, and a typical coalesced run. */
    @Param({"4096", "65536", "262144", "1048576"})
    public int blockSize;

    private ByteBuffer block;
    private final BlockHasher hasher = new BlockHasher();

    @Setup(Level.Trial)
    public void setUp()
    {
        block = BenchData.directBlock(blockSize, false, 1);
        final com.dynatrace.hash4j.hashing.HashValue128 expected = BlockHash.of(block, 0, blockSize);
        hasher.hash(block, 0, blockSize);
        if (hasher.high() != expected.getMostSignificantBits() || hasher.low() != expected.getLeastSignificantBits())
        {
            throw new IllegalStateException("BlockHasher and hash4j disagree over " + blockSize + " bytes");
        }
    }

    @Benchmark
    public void hash(final ByteCounter bytes, final Blackhole bh)
    {
        bh.consume(BlockHash.of(block, 0, blockSize));
        bytes.bytes += blockSize;
    }

    @Benchmark
    public void hasher(final ByteCounter bytes, final Blackhole bh)
    {
        hasher.hash(block, 0, blockSize);
        bh.consume(hasher.high());
        bh.consume(hasher.low());
        bytes.bytes += blockSize;
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(BlockHashBenchmark.class, args);
    }
}
