package io.doppel.bench.storage;

import io.doppel.bench.BenchData;
import io.doppel.bench.ByteCounter;
import io.doppel.storage.Volume;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * {@link Volume#read} and {@link Volume#write} of one block, on a file mapped in 4 MiB windows (the
 * daemon's windows are 1 GiB; smaller ones keep the file small, and the code path is the same), in the
 * page cache, with the file's blocks allocated in setup.
 *
 * <ul>
 *   <li>{@code placement=inside}: the block starts on a block boundary inside the first window, as every
 *       aligned block does (the pipeline's case).</li>
 *   <li>{@code placement=straddle}: the block starts half a block before the first window's end, so the
 *       copy is split over two windows (byte-granular NBD requests and the Java API can do this).</li>
 * </ul>
 *
 * <p>Why: the standby writes every block it receives through {@code write}; NBD reads and writes go
 * through both. Writes of 64 KiB and more go to the file by {@code pwrite} (see {@link Volume#write}),
 * shorter ones are stored into the mapping, so the block sizes cover both paths. The page cache is warm:
 * this is the CPU cost of the copy and the system call, not the disk.
 *
 * <p>Results: operations (blocks) per second, and {@code :bytes} in bytes per second (JMH labels it ops/s).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class VolumeBenchmark
{
    /** The window length the volume is opened with: the smallest allowed. */
    public static final long WINDOW_BYTES = 4L << 20;
    public static final long VOLUME_BYTES = 2 * WINDOW_BYTES;

    /** Block size in bytes: the smallest block, the pwrite threshold, and the largest frame payload. */
    @Param({"4096", "65536", "1048576"})
    public int blockSize;

    /** {@code inside} one window, or {@code straddle} the boundary between the first two. */
    @Param({"inside", "straddle"})
    public String placement;

    private Path image;
    private Volume volume;
    private long offset;
    private ByteBuffer block;
    private ByteBuffer readBack;

    @Setup(Level.Trial)
    public void setUp() throws IOException
    {
        switch (placement)
        {
            case "inside": offset = WINDOW_BYTES - 2L * blockSize; break;
            case "straddle": offset = WINDOW_BYTES - blockSize / 2; break;
            default: throw new IllegalArgumentException("placement=" + placement + " (expected: inside | straddle)");
        }
        image = Files.createTempFile("doppel-bench-volume-", ".img");
        volume = Volume.open(image, VOLUME_BYTES, WINDOW_BYTES);
        final ByteBuffer fill = BenchData.directBlock(1 << 20, true, 3);
        for (long at = 0; at < VOLUME_BYTES; at += fill.capacity())
        {
            volume.write(at, fill.clear()); // allocates the file's blocks and warms the page cache
        }
        block = BenchData.directBlock(blockSize, false, 5);
        readBack = ByteBuffer.allocateDirect(blockSize);
        volume.write(offset, block.clear());
        volume.read(offset, readBack.clear());
        if (readBack.flip().mismatch(block.clear()) != -1)
        {
            throw new IllegalStateException("read back differs from the block written at " + offset);
        }
        final boolean crosses = offset / WINDOW_BYTES != (offset + blockSize - 1) / WINDOW_BYTES;
        if (crosses != placement.equals("straddle"))
        {
            throw new IllegalStateException("block at " + offset + " of " + blockSize + " bytes: crosses a window "
                + crosses + ", placement " + placement);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException
    {
        try
        {
            if (volume != null)
            {
                volume.close();
                volume = null;
            }
        }
        finally
        {
            Files.deleteIfExists(image);
        }
    }

    @Benchmark
    public void read(final ByteCounter bytes, final Blackhole bh)
    {
        volume.read(offset, readBack.clear());
        bh.consume(readBack.get(0));
        bytes.bytes += blockSize;
    }

    @Benchmark
    public void write(final ByteCounter bytes)
    {
        volume.write(offset, block.clear());
        bytes.bytes += blockSize;
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(VolumeBenchmark.class, args);
    }
}
