package io.doppel.replication;

/**
 * How many queued replication-log records cover each block: an open-addressing map from block number to
 * count, on primitive arrays (no allocation per write; it grows by doubling, rarely).
 *
 * <p>Why: when the sender takes a record, a block may still be covered by a later record in the log (the
 * block was rewritten behind a backlog). Its dirty bit must then stay set, or a crash after the first
 * record is acknowledged would forget the second write. Not thread-safe: the log's lock guards it.
 */
final class BlockCounts
{
    private static final long EMPTY = -1;

    private long[] keys;
    private int[] counts;
    private int size;

    BlockCounts(final int initialCapacity)
    {
        final int capacity = Integer.highestOneBit(Math.max(16, initialCapacity - 1) << 1);
        keys = new long[capacity];
        counts = new int[capacity];
        java.util.Arrays.fill(keys, EMPTY);
    }

    /** Adds one to the count of every block in {@code [from, to)}. */
    void increment(final long from, final long to)
    {
        for (long b = from; b < to; b++)
        {
            if ((size + 1) * 2 > keys.length)
            {
                grow();
            }
            int i = slot(b);
            while (keys[i] != EMPTY && keys[i] != b)
            {
                i = (i + 1) & (keys.length - 1);
            }
            if (keys[i] == EMPTY)
            {
                keys[i] = b;
                size++;
            }
            counts[i]++;
        }
    }

    /** Subtracts one from the count of {@code block}; returns what is left (0: no queued record covers it). */
    int decrement(final long block)
    {
        int i = slot(block);
        while (keys[i] != block)
        {
            if (keys[i] == EMPTY)
            {
                return 0; // not counted (cannot happen for a queued record; harmless)
            }
            i = (i + 1) & (keys.length - 1);
        }
        final int left = --counts[i];
        if (left == 0)
        {
            remove(i);
        }
        return left;
    }

    /** The number of queued records covering {@code block}. */
    int count(final long block)
    {
        int i = slot(block);
        while (keys[i] != EMPTY)
        {
            if (keys[i] == block)
            {
                return counts[i];
            }
            i = (i + 1) & (keys.length - 1);
        }
        return 0;
    }

    int size()
    {
        return size;
    }

    /** Forgets every count; a table that grew large is given back. */
    void clear()
    {
        if (keys.length > INITIAL_CAPACITY)
        {
            keys = new long[INITIAL_CAPACITY];
            counts = new int[INITIAL_CAPACITY];
        }
        java.util.Arrays.fill(keys, EMPTY);
        java.util.Arrays.fill(counts, 0);
        size = 0;
    }

    private static final int INITIAL_CAPACITY = 1 << 15;

    /** Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    private void remove(final int at)
    {
        final int mask = keys.length - 1;
        int hole = at;
        int i = (at + 1) & mask;
        while (keys[i] != EMPTY)
        {
            final int home = slot(keys[i]);
            // move i into the hole if its home is not in (hole, i]
            if (((i - home) & mask) >= ((i - hole) & mask))
            {
                keys[hole] = keys[i];
                counts[hole] = counts[i];
                hole = i;
            }
            i = (i + 1) & mask;
        }
        keys[hole] = EMPTY;
        counts[hole] = 0;
        size--;
    }

    private void grow()
    {
        final long[] oldKeys = keys;
        final int[] oldCounts = counts;
        final long[] newKeys = new long[oldKeys.length * 2]; // both allocated before either is swapped in
        final int[] newCounts = new int[oldKeys.length * 2];
        java.util.Arrays.fill(newKeys, EMPTY);
        keys = newKeys;
        counts = newCounts;
        for (int j = 0; j < oldKeys.length; j++)
        {
            if (oldKeys[j] != EMPTY)
            {
                int i = slot(oldKeys[j]);
                while (keys[i] != EMPTY)
                {
                    i = (i + 1) & (keys.length - 1);
                }
                keys[i] = oldKeys[j];
                counts[i] = oldCounts[j];
            }
        }
    }

    private int slot(final long block)
    {
        final long h = block * 0x9E3779B97F4A7C15L;
        return (int)(h >>> 32) & (keys.length - 1);
    }
}
