package io.doppel.twoway;

/**
 * How two versions of one block relate, and which one both nodes keep. Version vectors hold one counter
 * per node slot, compared in serial-number arithmetic (RFC 1982): each counter is 32 bits and wraps, which
 * is sound while two copies of a block are less than 2^31 writes by one node apart — far more than one
 * partition can produce.
 */
public enum VersionOrder
{
    /** The same version: nothing to do. */
    EQUAL,
    /** The incoming version has seen everything the local one has, and more: apply it. */
    NEWER,
    /** The local version has seen everything the incoming one has: ignore it. */
    OLDER,
    /** Neither has seen the other: a conflict, resolved by {@link #incomingWins}. */
    CONCURRENT;

    /** Compares vector {@code incoming} with {@code local} (same length: one counter per node slot). */
    public static VersionOrder of(final int[] local, final int[] incoming)
    {
        boolean ahead = false;
        boolean behind = false;
        for (int i = 0; i < local.length; i++)
        {
            final int d = incoming[i] - local[i]; // serial arithmetic: the sign of the wrapped difference
            if (d > 0)
            {
                ahead = true;
            }
            else if (d < 0)
            {
                behind = true;
            }
        }
        return ahead ? (behind ? CONCURRENT : NEWER) : (behind ? OLDER : EQUAL);
    }

    /**
     * Last writer wins: the version with the higher {@link HybridClock} stamp, compared unsigned; the slot
     * bits in the stamp break ties by node order. Both nodes compute the same answer from the same pair.
     */
    public static boolean incomingWins(final long localStamp, final long incomingStamp)
    {
        return Long.compareUnsigned(incomingStamp, localStamp) > 0;
    }

    /** Componentwise maximum (serial arithmetic) of two vectors into {@code into}. */
    public static void merge(final int[] into, final int[] other)
    {
        for (int i = 0; i < into.length; i++)
        {
            if (other[i] - into[i] > 0)
            {
                into[i] = other[i];
            }
        }
    }
}
