package io.doppel.storage;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One dirty bit per block, plus two in-flight bits, kept in a (memory-mapped) buffer so heap use does
 * not grow with the volume.
 *
 * <p>Marking is lock-free from any number of threads ({@code getAndBitwiseOr} on 64-bit words).
 * Draining is done by one thread at a time: {@link #claimRun} atomically clears the dirty bits it
 * returns, so a block marked again after its claim (a rewrite while it is being shipped) is found again
 * by a later claim; nothing marked is ever lost. Writers must change the data before marking, and the
 * drainer must read the data after claiming: the atomic read-modify-write orders the two.
 *
 * <p>Why in-flight bits: a claimed block is on its way to the standby but not yet acknowledged. If the
 * process dies (or the link drops) now, the block must still count as different. A claim therefore sets
 * the block's bit in the current <em>epoch</em> before clearing its dirty bit; the drainer switches
 * epochs now and then and {@linkplain #settleEpoch settles} an old epoch (clears its bits) once the
 * standby has acknowledged every frame sent in it. Two epochs, because a block claimed again in the new
 * epoch must not be settled by the old epoch's acknowledgement. After a crash or a link drop,
 * {@link #returnInFlight} turns every in-flight bit back into a dirty bit.
 *
 * <p>Layout: per 64 blocks a group of four little-endian words, {@code dirty, flight0, flight1, spare},
 * so the dirty and in-flight bits of a block always sit in the same page (they are written back to disk
 * together). Block {@code i} is bit {@code i mod 64} of each word of group {@code i / 64}.
 */
public final class DirtyMap
{
    private static final VarHandle WORDS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final ByteBuffer bits;
    private final int baseIndex;
    private final long blockCount;
    private final int blockShift;
    private final long wordCount;
    private final AtomicLong dirtyBlocks = new AtomicLong();
    private final AtomicLong inFlightBlocks = new AtomicLong();
    /** Per epoch, one bit per 64 groups that may hold that epoch's bits, so settling skips the rest. */
    private final long[][] touchedChunks;
    private int epoch;

    /**
     * @param bits       the buffer that holds the bitmap (direct, so atomic access works)
     * @param baseIndex  where the bitmap starts in {@code bits}; 8-byte aligned
     * @param blockCount blocks in the volume
     * @param blockSize  bytes per block, a power of two
     */
    public DirtyMap(final ByteBuffer bits, final int baseIndex, final long blockCount, final int blockSize)
    {
        if ((baseIndex & 7) != 0 || !bits.isDirect())
        {
            throw new IllegalArgumentException("bitmap must be a direct buffer at an 8-byte aligned index");
        }
        this.wordCount = (blockCount + 63) >>> 6;
        if (baseIndex + wordCount * GROUP_BYTES > bits.capacity())
        {
            throw new IllegalArgumentException("bitmap of " + blockCount + " blocks does not fit in " + bits.capacity()
                + " bytes at " + baseIndex);
        }
        this.bits = bits;
        this.baseIndex = baseIndex;
        this.blockCount = blockCount;
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        final int chunks = (int)((wordCount + 63) >>> 6);
        this.touchedChunks = new long[][] {new long[(chunks + 63) >>> 6], new long[(chunks + 63) >>> 6]};
        long count = 0;
        long flying = 0;
        for (long w = 0; w < wordCount; w++)
        {
            count += Long.bitCount(word(w));
            final long f = flight(w, 0) | flight(w, 1);
            if (f != 0)
            {
                flying += Long.bitCount(f);
                touch(0, w);
                touch(1, w);
            }
        }
        dirtyBlocks.set(count);
        inFlightBlocks.set(flying);
    }

    /** Bytes of map needed for {@code blockCount} blocks: a 32-byte group per 64 blocks. */
    public static long bytesFor(final long blockCount)
    {
        return ((blockCount + 63) >>> 6) * GROUP_BYTES;
    }

    private static final int GROUP_BYTES = 32;

    public long blockCount()
    {
        return blockCount;
    }

    public int blockSize()
    {
        return 1 << blockShift;
    }

    /** Blocks currently marked. */
    public long dirtyBlocks()
    {
        return dirtyBlocks.get();
    }

    public boolean isDirty(final long block)
    {
        return (word(block >>> 6) & (1L << block)) != 0;
    }

    /** Marks one block. */
    public void mark(final long block)
    {
        final long mask = 1L << block;
        final int index = index(block >>> 6);
        // The caller's data store must be visible before we decide the bit needs no update; a plain
        // read could be satisfied while that store still sits in this core's store buffer, and a
        // drainer clearing the bit in between would then read the old data.
        VarHandle.fullFence();
        if (((long)WORDS.getVolatile(bits, index) & mask) != 0)
        {
            return; // already dirty: skip the write so hot words are not bounced between cores
        }
        final long old = (long)WORDS.getAndBitwiseOr(bits, index, mask);
        if ((old & mask) == 0)
        {
            dirtyBlocks.incrementAndGet();
        }
    }

    /** Marks every block touched by the byte range {@code [offset, offset+length)}. */
    public void markBytes(final long offset, final long length)
    {
        if (length <= 0)
        {
            return;
        }
        markBlocks(offset >>> blockShift, ((offset + length - 1) >>> blockShift) + 1);
    }

    /** Marks blocks {@code [from, to)}. */
    public void markBlocks(final long from, final long to)
    {
        VarHandle.fullFence(); // see mark(): the data stores come first
        long block = from;
        while (block < to)
        {
            final long w = block >>> 6;
            final int lo = (int)(block & 63);
            final int hi = (int)Math.min(64, to - (w << 6));
            final long mask = rangeMask(lo, hi);
            final int index = index(w);
            if (((long)WORDS.getVolatile(bits, index) & mask) != mask)
            {
                final long old = (long)WORDS.getAndBitwiseOr(bits, index, mask);
                dirtyBlocks.addAndGet(Long.bitCount(mask & ~old));
            }
            block = (w << 6) + hi;
        }
    }

    /** Clears every block touched by the byte range {@code [offset, offset+length)}. Drainer only. */
    public void clearBytes(final long offset, final long length)
    {
        if (length <= 0)
        {
            return;
        }
        final long to = ((offset + length - 1) >>> blockShift) + 1;
        long block = offset >>> blockShift;
        while (block < to)
        {
            final long w = block >>> 6;
            final int lo = (int)(block & 63);
            final int hi = (int)Math.min(64, to - (w << 6));
            final long mask = rangeMask(lo, hi);
            final long old = (long)WORDS.getAndBitwiseAnd(bits, index(w), ~mask);
            dirtyBlocks.addAndGet(-Long.bitCount(old & mask));
            block = (w << 6) + hi;
        }
    }

    /** The first dirty block at or after {@code from}, or -1. */
    public long nextDirty(final long from)
    {
        return nextDirty(from, blockCount);
    }

    /** The first dirty block in {@code [from, limit)}, or -1; reads only the words of that range. */
    public long nextDirty(final long from, final long limit)
    {
        final long end = Math.min(limit, blockCount);
        if (from >= end)
        {
            return -1;
        }
        final long lastWord = (end - 1) >>> 6;
        long w = from >>> 6;
        long word = word(w) & (-1L << from);
        while (true)
        {
            if (word != 0)
            {
                final long block = (w << 6) + Long.numberOfTrailingZeros(word);
                return block < end ? block : -1;
            }
            if (++w > lastWord)
            {
                return -1;
            }
            word = word(w);
        }
    }

    /**
     * Claims the run of consecutive dirty blocks that starts at the first dirty block in
     * {@code [from, limit)}, at most {@code maxBlocks} long and ending before {@code limit}, clearing
     * their bits atomically. Returns the run's first block and stores its length in
     * {@code runLength[0]}; returns -1 when nothing in the range is dirty. Single drainer only.
     */
    public long claimRun(final long from, final long limit, final int maxBlocks, final int[] runLength)
    {
        final long start = nextDirty(from, limit);
        if (start < 0)
        {
            return -1;
        }
        final long wanted = Math.min(maxBlocks, Math.min(limit, blockCount) - start);
        long block = start;
        int claimed = 0;
        while (claimed < wanted)
        {
            final long w = block >>> 6;
            final int lo = (int)(block & 63);
            final long word = word(w) >>> lo;
            // consecutive set bits from lo within this word, limited by what is still wanted
            int run = Long.numberOfTrailingZeros(~word);
            run = (int)Math.min(Math.min(run, 64 - lo), wanted - claimed);
            if (run == 0)
            {
                break;
            }
            final long mask = rangeMask(lo, lo + run);
            moveToFlight(w, mask);
            claimed += run;
            block += run;
            if (lo + run < 64)
            {
                break; // the run ended inside this word
            }
        }
        runLength[0] = claimed;
        return start;
    }

    /**
     * Claims every block touched by the byte range (a replication log record being shipped): in flight
     * in the current epoch, no longer dirty. Drainer only.
     */
    public void claimBytes(final long offset, final long length)
    {
        claimBlocks(firstBlock(offset), endBlock(offset, length));
    }

    /**
     * Blocks {@code [from, to)} are being shipped but must stay dirty (a later write to them is still
     * queued): only their in-flight bit is set. Drainer only.
     */
    public void flyBlocks(final long from, final long to)
    {
        long block = from;
        while (block < to)
        {
            final long w = block >>> 6;
            final int lo = (int)(block & 63);
            final int hi = (int)Math.min(64, to - (w << 6));
            final long mask = rangeMask(lo, hi);
            final long wasFlying = (long)WORDS.getAndBitwiseOr(bits, flightIndex(w, epoch), mask);
            inFlightBlocks.addAndGet(Long.bitCount(mask & ~wasFlying & ~flight(w, epoch ^ 1)));
            touch(epoch, w);
            block = (w << 6) + hi;
        }
    }

    /** Claims blocks {@code [from, to)}: in flight in the current epoch, no longer dirty. Drainer only. */
    public void claimBlocks(final long from, final long to)
    {
        long block = from;
        while (block < to)
        {
            final long w = block >>> 6;
            final int lo = (int)(block & 63);
            final int hi = (int)Math.min(64, to - (w << 6));
            moveToFlight(w, rangeMask(lo, hi));
            block = (w << 6) + hi;
        }
    }

    /** Block index range touched by a byte range: {@code [firstBlock(offset), endBlock(offset, length))}. */
    public long firstBlock(final long offset)
    {
        return offset >>> blockShift;
    }

    public long endBlock(final long offset, final long length)
    {
        return length <= 0 ? offset >>> blockShift : ((offset + length - 1) >>> blockShift) + 1;
    }

    /** In flight first, then not dirty: a crash in between leaves the block both, never neither. */
    private void moveToFlight(final long w, final long mask)
    {
        final long wasFlying = (long)WORDS.getAndBitwiseOr(bits, flightIndex(w, epoch), mask);
        inFlightBlocks.addAndGet(Long.bitCount(mask & ~wasFlying & ~flight(w, epoch ^ 1)));
        touch(epoch, w);
        final long old = (long)WORDS.getAndBitwiseAnd(bits, index(w), ~mask);
        dirtyBlocks.addAndGet(-Long.bitCount(old & mask));
    }

    /** The epoch new claims go to (0 or 1). */
    public int epoch()
    {
        return epoch;
    }

    /**
     * Makes the other epoch current and returns the one that was; the caller settles it once every
     * frame sent so far is acknowledged. The other epoch must already be settled. Drainer only.
     */
    public int switchEpoch()
    {
        final int old = epoch;
        epoch ^= 1;
        return old;
    }

    /** The standby holds everything claimed in {@code e}: clears that epoch's in-flight bits. Drainer only. */
    public void settleEpoch(final int e)
    {
        forEachTouchedWord(e, w ->
        {
            final long old = (long)WORDS.getAndSet(bits, flightIndex(w, e), 0L);
            if (old != 0)
            {
                inFlightBlocks.addAndGet(-Long.bitCount(old & ~flight(w, e ^ 1)));
            }
        });
    }

    /**
     * Turns every in-flight block back into a dirty block: the link dropped before the standby
     * acknowledged them, or the process died. Returns how many blocks were in flight. Drainer only.
     */
    public long returnInFlight()
    {
        final long[] returned = new long[1];
        for (int e = 0; e < 2; e++)
        {
            final int epochNow = e;
            forEachTouchedWord(e, w ->
            {
                final long f = (long)WORDS.getAndSet(bits, flightIndex(w, epochNow), 0L);
                if (f != 0)
                {
                    final long old = (long)WORDS.getAndBitwiseOr(bits, index(w), f);
                    dirtyBlocks.addAndGet(Long.bitCount(f & ~old));
                    returned[0] += Long.bitCount(f & ~flight(w, epochNow ^ 1)); // a block in both epochs counts once
                }
            });
        }
        inFlightBlocks.set(0);
        return returned[0];
    }

    /** Calls {@code action} for every word of a chunk epoch {@code e} may have touched, and forgets the chunks. */
    private void forEachTouchedWord(final int e, final java.util.function.LongConsumer action)
    {
        final long[] chunks = touchedChunks[e];
        for (int c = 0; c < chunks.length; c++)
        {
            long set = chunks[c];
            chunks[c] = 0;
            while (set != 0)
            {
                final long chunk = ((long)c << 6) + Long.numberOfTrailingZeros(set);
                set &= set - 1;
                final long last = Math.min(wordCount, (chunk + 1) << 6);
                for (long w = chunk << 6; w < last; w++)
                {
                    action.accept(w);
                }
            }
        }
    }

    /** Blocks claimed and not yet settled. */
    public long inFlightBlocks()
    {
        return inFlightBlocks.get();
    }

    /** Clears every dirty and in-flight bit (after a full, verified copy). */
    public void clearAll()
    {
        for (long w = 0; w < wordCount; w++)
        {
            final long old = (long)WORDS.getAndSet(bits, index(w), 0L);
            dirtyBlocks.addAndGet(-Long.bitCount(old));
            WORDS.setVolatile(bits, flightIndex(w, 0), 0L);
            WORDS.setVolatile(bits, flightIndex(w, 1), 0L);
        }
        java.util.Arrays.fill(touchedChunks[0], 0);
        java.util.Arrays.fill(touchedChunks[1], 0);
        inFlightBlocks.set(0);
    }

    /** Byte range of this map's group for block {@code block}, relative to the buffer: for forcing it. */
    public int groupIndex(final long block)
    {
        return index(block >>> 6);
    }

    private void touch(final int e, final long w)
    {
        final long chunk = w >>> 6;
        touchedChunks[e][(int)(chunk >>> 6)] |= 1L << chunk;
    }

    private long word(final long w)
    {
        return (long)WORDS.getVolatile(bits, index(w));
    }

    private long flight(final long w, final int e)
    {
        return (long)WORDS.getVolatile(bits, flightIndex(w, e));
    }

    private int index(final long w)
    {
        return baseIndex + (int)(w * GROUP_BYTES);
    }

    private int flightIndex(final long w, final int e)
    {
        return index(w) + 8 + (e << 3);
    }

    private static long rangeMask(final int lo, final int hi)
    {
        final long upTo = hi == 64 ? -1L : (1L << hi) - 1;
        return upTo & (-1L << lo);
    }
}
