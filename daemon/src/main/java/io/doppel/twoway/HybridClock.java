package io.doppel.twoway;

import java.util.function.LongSupplier;

/**
 * A hybrid logical clock (Kulkarni et al., 2014) that stamps every local write of a two-way volume.
 * Stamps order writes the way wall clocks roughly do, yet never go backwards and always exceed every
 * stamp this node has seen from its peer, so "the later write wins" is well defined on both nodes even
 * when their clocks disagree by a few seconds.
 *
 * <p>A stamp is one long, compared as unsigned: 44 bits of milliseconds since 1970 (until the year 2527),
 * 16 bits of logical counter, 4 bits of the writer's node slot. The slot makes stamps of different nodes
 * unequal, so a tie between two concurrent writes is broken by the node order (slots are assigned in
 * the order of node names) — the same decision on both sides.
 */
public final class HybridClock
{
    static final int SLOT_BITS = 4;
    static final int LOGICAL_BITS = 16;
    static final int MAX_SLOTS = 1 << SLOT_BITS;
    private static final long LOGICAL_MASK = (1L << LOGICAL_BITS) - 1;

    private final LongSupplier wallMillis;
    private final int slot;
    /** The last stamp issued or seen, without its slot: millis and logical counter. */
    private long last;

    /**
     * @param slot this node's slot (0 to 15)
     * @param floor a stamp persisted earlier (0 for none): no stamp issued will be below it
     */
    public HybridClock(final LongSupplier wallMillis, final int slot, final long floor)
    {
        if (slot < 0 || slot >= MAX_SLOTS)
        {
            throw new IllegalArgumentException("node slot " + slot + ": expected 0-" + (MAX_SLOTS - 1));
        }
        this.wallMillis = wallMillis;
        this.slot = slot;
        this.last = floor >>> SLOT_BITS;
    }

    /** A stamp for a local write: greater than every stamp issued or observed before. */
    public synchronized long tick()
    {
        final long wall = wallMillis.getAsLong() << LOGICAL_BITS;
        last = wall > last ? wall : next(last);
        return (last << SLOT_BITS) | slot;
    }

    /** Takes in a peer's stamp, so later local stamps exceed it. */
    public synchronized void observe(final long stamp)
    {
        final long remote = stamp >>> SLOT_BITS;
        if (Long.compareUnsigned(remote, last) > 0)
        {
            last = remote;
        }
    }

    /** The highest stamp issued or observed (to persist, so a restart does not go back). */
    public synchronized long high()
    {
        return (last << SLOT_BITS) | slot;
    }

    private static long next(final long t)
    {
        // The logical counter may carry into the millis: still monotonic, and 65536 writes in one
        // millisecond at most borrow a millisecond from the future.
        return t + 1;
    }

    public static long millis(final long stamp)
    {
        return stamp >>> (SLOT_BITS + LOGICAL_BITS);
    }

    public static int logical(final long stamp)
    {
        return (int)((stamp >>> SLOT_BITS) & LOGICAL_MASK);
    }

    public static int slot(final long stamp)
    {
        return (int)(stamp & (MAX_SLOTS - 1));
    }

    public static String format(final long stamp)
    {
        return java.time.Instant.ofEpochMilli(millis(stamp)) + "+" + logical(stamp) + "@" + slot(stamp);
    }
}
