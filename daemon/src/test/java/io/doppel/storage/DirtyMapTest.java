package io.doppel.storage;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.lists;

class DirtyMapTest
{
    private static final int BLOCK = 4096;
    private static final long NO_LIMIT = Long.MAX_VALUE;

    /** A map on a fresh direct buffer, starting 8 bytes in so baseIndex handling is exercised too. */
    private static DirtyMap newMap(final long blocks)
    {
        return new DirtyMap(ByteBuffer.allocateDirect(8 + (int)DirtyMap.bytesFor(blocks)), 8, blocks, BLOCK);
    }

    private static List<Long> dirtyList(final DirtyMap map)
    {
        final List<Long> out = new ArrayList<>();
        for (long b = map.nextDirty(0); b >= 0; b = map.nextDirty(b + 1))
        {
            out.add(b);
        }
        return out;
    }

    private static long countByScan(final DirtyMap map)
    {
        long n = 0;
        for (long b = 0; b < map.blockCount(); b++)
        {
            if (map.isDirty(b))
            {
                n++;
            }
        }
        return n;
    }

    // ------------------------------------------------------------------ construction

    @Test
    void constructionChecksTheBuffer()
    {
        assertThat(DirtyMap.bytesFor(0)).isZero();
        assertThat(DirtyMap.bytesFor(1)).isEqualTo(32);
        assertThat(DirtyMap.bytesFor(64)).isEqualTo(32);
        assertThat(DirtyMap.bytesFor(65)).isEqualTo(64);
        assertThatThrownBy(() -> new DirtyMap(ByteBuffer.allocate(64), 0, 64, BLOCK))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("direct");
        assertThatThrownBy(() -> new DirtyMap(ByteBuffer.allocateDirect(64), 4, 64, BLOCK))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("aligned");
        assertThatThrownBy(() -> new DirtyMap(ByteBuffer.allocateDirect(64), 8, 65, BLOCK))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("65 blocks");
        final DirtyMap map = newMap(100);
        assertThat(map.blockCount()).isEqualTo(100);
        assertThat(map.blockSize()).isEqualTo(BLOCK);
        assertThat(map.dirtyBlocks()).isZero();
        assertThat(map.nextDirty(0)).isEqualTo(-1);
    }

    @Test
    void aNewMapOnAnExistingBitmapCountsItsBits()
    {
        final ByteBuffer bits = ByteBuffer.allocateDirect(8 + (int)DirtyMap.bytesFor(200));
        final DirtyMap first = new DirtyMap(bits, 8, 200, BLOCK);
        first.markBlocks(10, 80);
        first.mark(199);
        final DirtyMap second = new DirtyMap(bits, 8, 200, BLOCK);
        assertThat(second.dirtyBlocks()).isEqualTo(71);
        assertThat(second.isDirty(199)).isTrue();
        assertThat(second.isDirty(80)).isFalse();
        // the 8 bytes before baseIndex are untouched
        assertThat(bits.getLong(0)).isZero();
    }

    // ------------------------------------------------------------------ in flight

    @Test
    void claimedBlocksStayInFlightUntilTheirEpochIsSettled()
    {
        final DirtyMap map = newMap(300);
        final int[] run = new int[1];
        map.markBlocks(10, 20);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(10);
        assertThat(map.dirtyBlocks()).isZero();
        assertThat(map.inFlightBlocks()).isEqualTo(10);
        final int first = map.switchEpoch();
        // block 15 is rewritten and claimed again in the new epoch: settling the old one keeps it
        map.mark(15);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(15);
        assertThat(map.inFlightBlocks()).isEqualTo(10);
        map.settleEpoch(first);
        assertThat(map.inFlightBlocks()).isEqualTo(1);
        // the link drops: what is still in flight is dirty again
        assertThat(map.returnInFlight()).isEqualTo(1);
        assertThat(map.inFlightBlocks()).isZero();
        assertThat(map.dirtyBlocks()).isEqualTo(1);
        assertThat(map.isDirty(15)).isTrue();
    }

    @Test
    void inFlightBitsSurviveInTheBufferAndComeBackAsDirty()
    {
        final ByteBuffer bits = ByteBuffer.allocateDirect(8 + (int)DirtyMap.bytesFor(5000));
        final DirtyMap first = new DirtyMap(bits, 8, 5000, BLOCK);
        first.markBlocks(100, 200);
        first.mark(4999);
        first.claimBytes(100L * BLOCK + 7, 50L * BLOCK); // blocks 100..150
        assertThat(first.dirtyBlocks()).isEqualTo(50);
        assertThat(first.inFlightBlocks()).isEqualTo(51);
        // "the process dies": a new map over the same bytes finds both kinds of bit
        final DirtyMap second = new DirtyMap(bits, 8, 5000, BLOCK);
        assertThat(second.inFlightBlocks()).isEqualTo(51);
        assertThat(second.returnInFlight()).isEqualTo(51);
        assertThat(second.dirtyBlocks()).isEqualTo(101);
        assertThat(second.nextDirty(0)).isEqualTo(100);
    }

    // ------------------------------------------------------------------ marking

    @Test
    void markAtWordBoundaries()
    {
        final DirtyMap map = newMap(200);
        map.mark(63);
        map.mark(64);
        map.mark(65);
        assertThat(map.dirtyBlocks()).isEqualTo(3);
        assertThat(map.isDirty(62)).isFalse();
        assertThat(map.isDirty(63)).isTrue();
        assertThat(map.isDirty(64)).isTrue();
        assertThat(map.isDirty(65)).isTrue();
        assertThat(map.isDirty(66)).isFalse();
        assertThat(map.isDirty(127)).isFalse();
        assertThat(map.isDirty(128)).isFalse();
        assertThat(map.nextDirty(0)).isEqualTo(63);
        assertThat(map.nextDirty(63)).isEqualTo(63);
        assertThat(map.nextDirty(64)).isEqualTo(64);
        assertThat(map.nextDirty(65)).isEqualTo(65);
        assertThat(map.nextDirty(66)).isEqualTo(-1);
        assertThat(map.nextDirty(200)).isEqualTo(-1);
        assertThat(map.nextDirty(1000)).isEqualTo(-1);

        // marking again changes nothing
        map.mark(64);
        map.markBlocks(63, 66);
        assertThat(map.dirtyBlocks()).isEqualTo(3);
        assertThat(countByScan(map)).isEqualTo(3);
    }

    @Test
    void markBlocksSpanningWords()
    {
        final DirtyMap map = newMap(300);
        map.markBlocks(60, 130);
        assertThat(map.dirtyBlocks()).isEqualTo(70);
        assertThat(countByScan(map)).isEqualTo(70);
        assertThat(map.isDirty(59)).isFalse();
        assertThat(map.isDirty(60)).isTrue();
        assertThat(map.isDirty(129)).isTrue();
        assertThat(map.isDirty(130)).isFalse();

        // overlapping marks only count the new blocks
        map.markBlocks(0, 64);
        assertThat(map.dirtyBlocks()).isEqualTo(130);
        map.markBlocks(128, 192);
        assertThat(map.dirtyBlocks()).isEqualTo(192);
        assertThat(countByScan(map)).isEqualTo(192);
        assertThat(map.nextDirty(0)).isZero();
        assertThat(map.nextDirty(192)).isEqualTo(-1);

        // empty and inverted ranges mark nothing
        map.markBlocks(250, 250);
        map.markBlocks(260, 250);
        assertThat(map.dirtyBlocks()).isEqualTo(192);
    }

    @Test
    void markBlocksOfExactWords()
    {
        final DirtyMap map = newMap(256);
        map.markBlocks(64, 128);
        assertThat(dirtyList(map)).hasSize(64).first().isEqualTo(64L);
        assertThat(map.isDirty(63)).isFalse();
        assertThat(map.isDirty(128)).isFalse();
        map.markBlocks(0, 256);
        assertThat(map.dirtyBlocks()).isEqualTo(256);
        assertThat(countByScan(map)).isEqualTo(256);
    }

    @Test
    void markBytesMarksEveryTouchedBlock()
    {
        final DirtyMap map = newMap(200);
        map.markBytes(BLOCK - 1, 2); // straddles blocks 0 and 1
        assertThat(dirtyList(map)).containsExactly(0L, 1L);
        map.clearAll();

        map.markBytes(BLOCK, BLOCK); // exactly block 1
        assertThat(dirtyList(map)).containsExactly(1L);
        map.clearAll();

        map.markBytes(64L * BLOCK - 1, 1); // last byte of block 63
        map.markBytes(64L * BLOCK, 1); // first byte of block 64
        assertThat(dirtyList(map)).containsExactly(63L, 64L);
        map.clearAll();

        map.markBytes(10, 0);
        map.markBytes(10, -5);
        assertThat(map.dirtyBlocks()).isZero();

        map.markBytes(63L * BLOCK + 100, 3L * BLOCK); // blocks 63..66
        assertThat(dirtyList(map)).containsExactly(63L, 64L, 65L, 66L);
        assertThat(map.dirtyBlocks()).isEqualTo(4);
    }

    // ------------------------------------------------------------------ clearing

    @Test
    void clearBytesClearsEveryTouchedBlockAndKeepsTheCountExact()
    {
        final DirtyMap map = newMap(300);
        map.markBlocks(0, 300);
        map.clearBytes(63L * BLOCK + 1, BLOCK); // touches 63 and 64
        assertThat(map.isDirty(62)).isTrue();
        assertThat(map.isDirty(63)).isFalse();
        assertThat(map.isDirty(64)).isFalse();
        assertThat(map.isDirty(65)).isTrue();
        assertThat(map.dirtyBlocks()).isEqualTo(298);

        map.clearBytes(60L * BLOCK, 10L * BLOCK); // 60..69, 63 and 64 already clean
        assertThat(map.dirtyBlocks()).isEqualTo(290);
        map.clearBytes(0, 0);
        assertThat(map.dirtyBlocks()).isEqualTo(290);
        map.clearBytes(100L * BLOCK, 150L * BLOCK); // 100..249 over three words
        assertThat(map.dirtyBlocks()).isEqualTo(140);
        assertThat(countByScan(map)).isEqualTo(140);
        assertThat(map.nextDirty(100)).isEqualTo(250);

        map.clearAll();
        assertThat(map.dirtyBlocks()).isZero();
        assertThat(map.nextDirty(0)).isEqualTo(-1);
        assertThat(countByScan(map)).isZero();
        map.clearAll();
        assertThat(map.dirtyBlocks()).isZero();
    }

    // ------------------------------------------------------------------ claiming

    @Test
    void claimRunSpanningWords()
    {
        final DirtyMap map = newMap(300);
        final int[] run = new int[1];
        map.markBlocks(60, 130);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(60);
        assertThat(run[0]).isEqualTo(70);
        assertThat(map.dirtyBlocks()).isZero();
        assertThat(map.nextDirty(0)).isEqualTo(-1);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(-1);
    }

    @Test
    void claimRunStopsAtTheFirstCleanBlockIncludingAtAWordEnd()
    {
        final DirtyMap map = newMap(300);
        final int[] run = new int[1];
        map.markBlocks(32, 64); // ends exactly at the word end
        map.mark(65);           // 64 is clean
        map.markBlocks(100, 103);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(32);
        assertThat(run[0]).isEqualTo(32);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(65);
        assertThat(run[0]).isEqualTo(1);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(100);
        assertThat(run[0]).isEqualTo(3);
        assertThat(map.dirtyBlocks()).isZero();
    }

    @Test
    void claimRunHonoursMaxBlocks()
    {
        final DirtyMap map = newMap(300);
        final int[] run = new int[1];
        map.markBlocks(60, 200);
        assertThat(map.claimRun(0, NO_LIMIT, 7, run)).isEqualTo(60);
        assertThat(run[0]).isEqualTo(7); // 60..66 crosses the word boundary at 64
        assertThat(map.isDirty(66)).isFalse();
        assertThat(map.isDirty(67)).isTrue();
        assertThat(map.dirtyBlocks()).isEqualTo(133);
        assertThat(map.claimRun(0, NO_LIMIT, 64, run)).isEqualTo(67);
        assertThat(run[0]).isEqualTo(64); // 67..130, across 128
        assertThat(map.claimRun(0, NO_LIMIT, 1, run)).isEqualTo(131);
        assertThat(run[0]).isEqualTo(1);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(132);
        assertThat(run[0]).isEqualTo(68);
        assertThat(map.dirtyBlocks()).isZero();
    }

    @Test
    void claimRunHonoursFromAndLimit()
    {
        final DirtyMap map = newMap(300);
        final int[] run = new int[1];
        map.markBlocks(10, 21);
        assertThat(map.claimRun(0, 10, 100, run)).as("nothing dirty below the limit").isEqualTo(-1);
        assertThat(map.dirtyBlocks()).isEqualTo(11);
        assertThat(map.claimRun(12, 15, 100, run)).isEqualTo(12);
        assertThat(run[0]).isEqualTo(3);
        assertThat(dirtyList(map)).containsExactly(10L, 11L, 15L, 16L, 17L, 18L, 19L, 20L);

        map.markBlocks(60, 140);
        assertThat(map.claimRun(50, 64, 100, run)).isEqualTo(60);
        assertThat(run[0]).as("limit exactly at a word boundary").isEqualTo(4);
        assertThat(map.claimRun(50, 129, 100, run)).isEqualTo(64);
        assertThat(run[0]).as("limit one past a word boundary").isEqualTo(65);
        assertThat(map.isDirty(129)).isTrue();
        assertThat(map.claimRun(200, NO_LIMIT, 100, run)).isEqualTo(-1);
        assertThat(map.dirtyBlocks()).isEqualTo(8 + 11);
        assertThat(countByScan(map)).isEqualTo(19);
    }

    @Test
    void partialLastWord()
    {
        final DirtyMap map = newMap(100); // 36 bits used in the second word
        final int[] run = new int[1];
        map.markBlocks(90, 100);
        assertThat(map.dirtyBlocks()).isEqualTo(10);
        assertThat(map.nextDirty(99)).isEqualTo(99);
        assertThat(map.claimRun(95, NO_LIMIT, 1000, run)).isEqualTo(95);
        assertThat(run[0]).isEqualTo(5);
        assertThat(map.claimRun(0, NO_LIMIT, 1000, run)).isEqualTo(90);
        assertThat(run[0]).isEqualTo(5);
        assertThat(map.dirtyBlocks()).isZero();

        // a map of exactly one word and one of one word plus a bit
        final DirtyMap one = newMap(64);
        one.markBlocks(0, 64);
        assertThat(one.claimRun(0, NO_LIMIT, 1000, run)).isZero();
        assertThat(run[0]).isEqualTo(64);
        assertThat(one.nextDirty(63)).isEqualTo(-1);

        final DirtyMap plusOne = newMap(65);
        plusOne.markBlocks(0, 65);
        assertThat(plusOne.dirtyBlocks()).isEqualTo(65);
        assertThat(plusOne.claimRun(0, NO_LIMIT, 1000, run)).isZero();
        assertThat(run[0]).isEqualTo(65);
        assertThat(plusOne.dirtyBlocks()).isZero();
    }

    // ------------------------------------------------------------------ properties

    @Test
    void drainingFromZeroYieldsExactlyTheMarkedSetInOrder()
    {
        qt().withFixedSeed(20240611L).withExamples(300)
            .forAll(integers().between(1, 700),
                lists().of(integers().between(0, Integer.MAX_VALUE - 1)).ofSizeBetween(0, 80),
                lists().of(integers().between(0, Integer.MAX_VALUE - 1)).ofSizeBetween(0, 12),
                integers().between(1, 150))
            .checkAssert((blocks, marks, ranges, maxBlocks) ->
            {
                final DirtyMap map = newMap(blocks);
                final TreeSet<Long> model = new TreeSet<>();
                for (final int m : marks)
                {
                    final long b = m % blocks;
                    map.mark(b);
                    model.add(b);
                }
                for (int i = 0; i + 1 < ranges.size(); i += 2)
                {
                    final long from = ranges.get(i) % blocks;
                    final long to = Math.min(blocks, from + ranges.get(i + 1) % 200);
                    if ((ranges.get(i) & 1) == 0)
                    {
                        map.markBlocks(from, to);
                        for (long b = from; b < to; b++)
                        {
                            model.add(b);
                        }
                    }
                    else
                    {
                        // an unaligned byte range, clipped to the volume
                        final long offset = from * BLOCK + ranges.get(i + 1) % BLOCK;
                        final long length = Math.min((to - from) * BLOCK, (long)blocks * BLOCK - offset);
                        map.markBytes(offset, length);
                        if (length > 0)
                        {
                            for (long b = offset / BLOCK; b <= (offset + length - 1) / BLOCK; b++)
                            {
                                model.add(b);
                            }
                        }
                    }
                }
                assertThat(map.dirtyBlocks()).isEqualTo(model.size());

                final List<Long> drained = new ArrayList<>();
                final int[] run = new int[1];
                long from = 0;
                long start;
                while ((start = map.claimRun(from, blocks, maxBlocks, run)) >= 0)
                {
                    assertThat(run[0]).isBetween(1, maxBlocks);
                    for (int k = 0; k < run[0]; k++)
                    {
                        drained.add(start + k);
                    }
                    from = start + run[0];
                }
                assertThat(drained).containsExactlyElementsOf(model);
                assertThat(map.dirtyBlocks()).isZero();
                assertThat(map.nextDirty(0)).isEqualTo(-1);
            });
    }

    // ------------------------------------------------------------------ concurrency

    /**
     * Writers mark blocks (recording a global write counter value BEFORE marking) while one drainer
     * claims runs (recording the counter value read AFTER each claim). When everything is drained,
     * every block must have been claimed at or after its last write: no mark is lost.
     */
    @Test
    void concurrentMarksAreNeverLost() throws InterruptedException
    {
        final int blocks = 4096 + 37; // partial last word
        final int writers = 3;
        final int marksPerWriter = 150_000;
        final DirtyMap map = newMap(blocks);
        final AtomicLong counter = new AtomicLong();
        final AtomicLongArray lastWrite = new AtomicLongArray(blocks);
        final AtomicLongArray claimedAt = new AtomicLongArray(blocks);
        final AtomicLong claims = new AtomicLong();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final CountDownLatch start = new CountDownLatch(1);
        final AtomicLong writersDone = new AtomicLong();

        final List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < writers; w++)
        {
            final long seed = 1000 + w;
            threads.add(new Thread(() ->
            {
                try
                {
                    start.await();
                    final SplittableRandom random = new SplittableRandom(seed);
                    for (int i = 0; i < marksPerWriter; i++)
                    {
                        // a few hot blocks so re-marks of still-dirty blocks are frequent
                        final int kind = random.nextInt(10);
                        if (kind < 6)
                        {
                            final int b = random.nextInt(10) < 5 ? random.nextInt(70) : random.nextInt(blocks);
                            lastWrite.set(b, counter.incrementAndGet());
                            map.mark(b);
                        }
                        else
                        {
                            final int from = random.nextInt(blocks);
                            final int to = Math.min(blocks, from + 1 + random.nextInt(130));
                            for (int b = from; b < to; b++)
                            {
                                lastWrite.set(b, counter.incrementAndGet());
                            }
                            if (kind < 8)
                            {
                                map.markBlocks(from, to);
                            }
                            else
                            {
                                map.markBytes((long)from * BLOCK + random.nextInt(BLOCK / 2),
                                    (long)(to - from - 1) * BLOCK + 1);
                            }
                        }
                    }
                }
                catch (final Throwable t)
                {
                    failure.compareAndSet(null, t);
                }
                finally
                {
                    writersDone.incrementAndGet();
                }
            }, "writer-" + w));
        }
        final Thread drainer = new Thread(() ->
        {
            try
            {
                start.await();
                final SplittableRandom random = new SplittableRandom(99);
                final int[] run = new int[1];
                long from = 0;
                boolean finalPass = false;
                while (true)
                {
                    final boolean done = writersDone.get() == writers;
                    final long s = map.claimRun(from, blocks, 1 + random.nextInt(100), run);
                    if (s < 0)
                    {
                        if (from == 0 && finalPass)
                        {
                            break; // a whole pass after the writers stopped found nothing
                        }
                        finalPass = done;
                        from = 0;
                        continue;
                    }
                    final long now = counter.get(); // read AFTER the claim
                    if (run[0] < 1 || run[0] > 100)
                    {
                        throw new AssertionError("run length " + run[0]);
                    }
                    for (int k = 0; k < run[0]; k++)
                    {
                        claimedAt.accumulateAndGet((int)(s + k), now, Math::max);
                    }
                    claims.incrementAndGet();
                    from = s + run[0];
                }
            }
            catch (final Throwable t)
            {
                failure.compareAndSet(null, t);
            }
        }, "drainer");
        threads.add(drainer);
        for (final Thread t : threads)
        {
            t.setDaemon(true);
            t.start();
        }
        start.countDown();
        for (final Thread t : threads)
        {
            t.join(TimeUnit.SECONDS.toMillis(60));
            assertThat(t.isAlive()).as(t.getName() + " finished").isFalse();
        }
        assertThat(failure.get()).isNull();

        assertThat(claims.get()).isPositive();
        assertThat(map.dirtyBlocks()).isZero();
        assertThat(map.nextDirty(0)).isEqualTo(-1);
        long written = 0;
        for (int b = 0; b < blocks; b++)
        {
            final long w = lastWrite.get(b);
            if (w > 0)
            {
                written++;
                final long c = claimedAt.get(b);
                if (c < w)
                {
                    throw new AssertionError("block " + b + " last written at " + w + " but last claimed at " + c
                        + ": a mark was lost");
                }
            }
        }
        assertThat(written).isGreaterThan(blocks / 2);
    }
}
