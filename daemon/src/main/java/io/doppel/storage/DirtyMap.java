package io.doppel.storage;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One bit per block, kept in a (memory-mapped) buffer so heap use does not grow with the volume.
 *
 * <p>Marking is lock-free from any number of threads ({@code getAndBitwiseOr} on 64-bit words).
 * Draining is done by one thread at a time: {@link #claimRun} atomically clears the bits it returns,
 * so a block marked again after its claim (a rewrite while it is being shipped) is found again by a
 * later claim; nothing marked is ever lost. Writers must change the data before marking, and the
 * drainer must read the data after claiming: the atomic read-modify-write orders the two.
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
        if (baseIndex + wordCount * 8 > bits.capacity())
        {
            throw new IllegalArgumentException("bitmap of " + blockCount + " blocks does not fit in " + bits.capacity()
                + " bytes at " + baseIndex);
        }
        this.bits = bits;
        this.baseIndex = baseIndex;
        this.blockCount = blockCount;
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        long count = 0;
        for (long w = 0; w < wordCount; w++)
        {
            count += Long.bitCount(word(w));
        }
        dirtyBlocks.set(count);
    }

    /** Bytes of bitmap needed for {@code blockCount} blocks (whole 64-bit words). */
    public static long bytesFor(final long blockCount)
    {
        return ((blockCount + 63) >>> 6) * 8;
    }

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
            final long old = (long)WORDS.getAndBitwiseAnd(bits, index(w), ~mask);
            dirtyBlocks.addAndGet(-Long.bitCount(old & mask));
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

    /** Clears every bit (after a full, verified copy). */
    public void clearAll()
    {
        for (long w = 0; w < wordCount; w++)
        {
            final long old = (long)WORDS.getAndSet(bits, index(w), 0L);
            dirtyBlocks.addAndGet(-Long.bitCount(old));
        }
    }

    private long word(final long w)
    {
        return (long)WORDS.getVolatile(bits, index(w));
    }

    private int index(final long w)
    {
        return baseIndex + (int)(w << 3);
    }

    private static long rangeMask(final int lo, final int hi)
    {
        final long upTo = hi == 64 ? -1L : (1L << hi) - 1;
        return upTo & (-1L << lo);
    }
}
