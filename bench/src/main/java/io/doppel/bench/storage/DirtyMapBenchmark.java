package io.doppel.bench.storage;

import io.doppel.bench.BenchData;
import io.doppel.storage.DirtyMap;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;
import org.openjdk.jmh.infra.ThreadParams;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The dirty bitmap of a 1 TiB volume of 4 KiB blocks: 2^28 blocks, a 32 MiB bitmap in a direct buffer.
 *
 * <ul>
 *   <li>{@code markRandom} ({@code @Threads(2)}, marks/s summed over threads): {@link DirtyMap#mark} of random
 *       blocks, mostly clean ones, so the full path runs: fence, volatile read, atomic OR, and the shared
 *       dirty-block counter both threads increment. The map is cleared before each iteration; within a
 *       1 s iteration a few percent of the map becomes dirty, so most marks stay first-time marks.</li>
 *   <li>{@code markAlreadyDirty} ({@code @Threads(2)}): marks of random blocks among the first 4096, all
 *       dirty already, so only the fence and the volatile read run: the cost of a rewrite of a hot block.</li>
 *   <li>{@code nextDirtyFullScan} (ms per scan): walks the whole map with {@link DirtyMap#nextDirty(long)},
 *       counting dirty blocks, at a dirty fraction of 0.01%, 1% and 50%. This stands in for a draining
 *       {@link DirtyMap#claimRun} pass: claiming clears bits, so a real drain is not repeatable without
 *       re-marking the map per invocation, which would cost more than the drain. It measures the scan
 *       (word reads, skipping clean words) and one call per dirty block, not the clearing; claimRun calls
 *       nextDirty once per run instead, so the 50% row is an upper bound for that part.</li>
 *   <li>{@code markWhileScanning} ({@code @Group}: one thread {@code mark}s random blocks of the first
 *       2^20 blocks (4 GiB) while the other {@code scan}s that range with {@code nextDirty}, both on one
 *       map cleared before each iteration): a guest writing while the sender looks for work, so the
 *       scanner reads cache lines the writer keeps changing. {@code scan} is in scans per second.</li>
 * </ul>
 *
 * <p>Why: every guest write marks a block on the primary's write path, from several threads; the sender
 * scans the map to find what to ship, and a mostly clean 1 TiB map is scanned end to end.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class DirtyMapBenchmark
{
    /** 1 TiB / 4 KiB. */
    public static final long BLOCKS = 1L << 28;
    public static final int BLOCK_SIZE = 4096;
    /** Blocks kept dirty for {@code markAlreadyDirty}: 4096 bits, eight cache lines. */
    public static final int HOT_BLOCKS = 1 << 12;

    /** One map shared by the marking threads. */
    @State(Scope.Benchmark)
    public static class SharedMap
    {
        DirtyMap map;

        @Setup(Level.Trial)
        public void allocate()
        {
            map = new DirtyMap(ByteBuffer.allocateDirect((int)DirtyMap.bytesFor(BLOCKS)), 0, BLOCKS, BLOCK_SIZE);
        }

        @Setup(Level.Iteration)
        public void reset()
        {
            map.clearAll();
            map.markBlocks(0, HOT_BLOCKS);
        }
    }

    /** Each marking thread's own random block numbers. */
    @State(Scope.Thread)
    public static class Cursor
    {
        SplittableRandom random;

        @Setup(Level.Trial)
        public void seed(final ThreadParams thread)
        {
            random = new SplittableRandom(1000 + thread.getThreadIndex());
        }
    }

    /** The map shared by a {@code markWhileScanning} group's writer and scanner. */
    @State(Scope.Group)
    public static class GroupMap
    {
        DirtyMap map;

        @Setup(Level.Trial)
        public void allocate()
        {
            map = new DirtyMap(ByteBuffer.allocateDirect((int)DirtyMap.bytesFor(BLOCKS)), 0, BLOCKS, BLOCK_SIZE);
        }

        @Setup(Level.Iteration)
        public void reset()
        {
            map.clearAll();
        }
    }

    /** Blocks the group's writer marks and its scanner walks: 2^20 (4 GiB of 4 KiB blocks, a 128 KiB bitmap). */
    public static final long GROUP_BLOCKS = 1L << 20;

    /** A map with a fixed random fraction of dirty blocks, scanned and never changed. */
    @State(Scope.Benchmark)
    public static class ScanMap
    {
        @Param({"0.0001", "0.01", "0.5"})
        public double dirtyFraction;

        DirtyMap map;

        @Setup(Level.Trial)
        public void fill()
        {
            if (!(dirtyFraction >= 0 && dirtyFraction <= 1))
            {
                throw new IllegalArgumentException("dirtyFraction=" + dirtyFraction + " (expected 0-1)");
            }
            final ByteBuffer bits = ByteBuffer.allocateDirect((int)DirtyMap.bytesFor(BLOCKS))
                .order(ByteOrder.LITTLE_ENDIAN); // DirtyMap's word order
            final SplittableRandom random = new SplittableRandom(7);
            if (dirtyFraction == 0.5)
            {
                for (int index = 0; index < bits.capacity(); index += 8)
                {
                    bits.putLong(index, random.nextLong());
                }
            }
            else if (dirtyFraction > 0)
            {
                // Bernoulli(p) per block, by geometric gaps between dirty blocks: cost follows the dirty count.
                final double logClean = Math.log1p(-dirtyFraction);
                long block = -1;
                while (true)
                {
                    final long gap = dirtyFraction == 1 ? 0
                        : (long)Math.floor(Math.log(1.0 - random.nextDouble()) / logClean);
                    block += gap + 1;
                    if (block >= BLOCKS || block < 0)
                    {
                        break;
                    }
                    final int index = (int)((block >>> 6) << 3);
                    bits.putLong(index, bits.getLong(index) | (1L << block));
                }
            }
            map = new DirtyMap(bits, 0, BLOCKS, BLOCK_SIZE); // counts the bits it is given
            final long found = countByScan(map);
            if (found != map.dirtyBlocks())
            {
                throw new IllegalStateException("scan found " + found + " dirty blocks, the map counts "
                    + map.dirtyBlocks());
            }
            System.out.printf(Locale.ROOT, "%n# map: %d of %d blocks dirty (%.4f%%)%n", map.dirtyBlocks(), BLOCKS,
                100.0 * map.dirtyBlocks() / BLOCKS);
        }
    }

    @Benchmark
    @Threads(2)
    public void markRandom(final SharedMap shared, final Cursor cursor)
    {
        shared.map.mark(cursor.random.nextLong() & (BLOCKS - 1));
    }

    @Benchmark
    @Threads(2)
    public void markAlreadyDirty(final SharedMap shared, final Cursor cursor)
    {
        shared.map.mark(cursor.random.nextInt(HOT_BLOCKS));
    }

    @Benchmark
    @Threads(1)
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    public void nextDirtyFullScan(final ScanMap scan, final Blackhole bh)
    {
        bh.consume(countByScan(scan.map));
    }

    @Benchmark
    @Group("markWhileScanning")
    @GroupThreads(1)
    public void mark(final GroupMap shared, final Cursor cursor)
    {
        shared.map.mark(cursor.random.nextLong() & (GROUP_BLOCKS - 1));
    }

    @Benchmark
    @Group("markWhileScanning")
    @GroupThreads(1)
    public void scan(final GroupMap shared, final Blackhole bh)
    {
        long found = 0;
        long block = shared.map.nextDirty(0, GROUP_BLOCKS);
        while (block >= 0)
        {
            found++;
            block = shared.map.nextDirty(block + 1, GROUP_BLOCKS);
        }
        bh.consume(found);
    }

    /** Walks the whole map with nextDirty, one call per dirty block; returns the dirty blocks found. */
    static long countByScan(final DirtyMap map)
    {
        long found = 0;
        long block = map.nextDirty(0);
        while (block >= 0)
        {
            found++;
            block = map.nextDirty(block + 1);
        }
        return found;
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(DirtyMapBenchmark.class, args);
    }
}
