package io.doppel.replication;

import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Turns the standby's acknowledgements into completions of local writes, for the acknowledgement
 * levels {@code received} and {@code sync}.
 *
 * <p>Every logged write has a log sequence number (lsn, from {@link ReplicationLog}); every frame a
 * sequence number (seq). The sender reports which seq carried the end of which lsn, and which FLUSH
 * frame covers which lsn; the link reports ACK (applied) and FLUSHED (on stable storage) by seq.
 * A waiter for lsn L runs once the standby holds (or has durably written) every write up to L.
 *
 * <p>When the standby cannot answer — the link is down, or the log overflowed and its records were
 * dropped — waiters are released as degraded, as DRBD completes writes locally when it loses its peer:
 * a write never waits forever. {@link #degraded()} counts them; /status shows the replication state.
 */
public final class AckTracker
{
    private record Waiter(long lsn, Runnable action)
    {
    }

    private final Object lock = new Object();
    private final PriorityQueue<Waiter> received = new PriorityQueue<>((a, b) -> Long.compare(a.lsn, b.lsn));
    private final PriorityQueue<Waiter> durable = new PriorityQueue<>((a, b) -> Long.compare(a.lsn, b.lsn));
    private long[] sentSeq = new long[1024];
    private long[] sentLsn = new long[1024];
    private int sentHead;
    private int sentCount;
    private long[] flushSeq = new long[64];
    private long[] flushLsn = new long[64];
    private int flushHead;
    private int flushCount;
    private long ackedLsn;
    private long durableLsn;
    private long releasedLsn;
    private long flushWantedLsn;
    private long degraded;
    /** Highest seq the standby has acknowledged / flushed: an answer may overtake our own bookkeeping. */
    private long ackedSeq;
    private long flushedSeq;
    private volatile Runnable flushWakeup = () -> { };

    /** Called (outside any lock of ours) when a durability wait is registered, to wake the sender. */
    void onFlushWanted(final Runnable wakeup)
    {
        flushWakeup = wakeup;
    }

    /** The sender handed the frame {@code seq}, which ends the write {@code lsn}, to the link. */
    void onSent(final long seq, final long lsn)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            if (seq <= ackedSeq)
            {
                // The ACK came back before we got here (a heartbeat flushed the frame early).
                ackedLsn = Math.max(ackedLsn, lsn);
                ready = drain(received, Math.max(ackedLsn, releasedLsn));
            }
            else
            {
                ready = List.of();
                append(seq, lsn);
            }
        }
        ready.forEach(Runnable::run);
    }

    /** Caller holds the lock. */
    private void append(final long seq, final long lsn)
    {
        if (sentCount == sentSeq.length)
        {
            sentSeq = grow(sentSeq, sentHead, sentCount);
            sentLsn = grow(sentLsn, sentHead, sentCount);
            sentHead = 0;
        }
        final int tail = (sentHead + sentCount) % sentSeq.length;
        sentSeq[tail] = seq;
        sentLsn[tail] = lsn;
        sentCount++;
    }

    /** The sender sent FLUSH frame {@code seq}, covering every write up to {@code lsn}. */
    void onFlushSent(final long seq, final long lsn)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            if (seq <= flushedSeq)
            {
                durableLsn = Math.max(durableLsn, lsn);
                ready = drain(durable, Math.max(durableLsn, releasedLsn));
            }
            else
            {
                ready = List.of();
                appendFlush(seq, lsn);
            }
        }
        ready.forEach(Runnable::run);
    }

    /** Caller holds the lock. */
    private void appendFlush(final long seq, final long lsn)
    {
        if (flushCount == flushSeq.length)
        {
            flushSeq = grow(flushSeq, flushHead, flushCount);
            flushLsn = grow(flushLsn, flushHead, flushCount);
            flushHead = 0;
        }
        final int tail = (flushHead + flushCount) % flushSeq.length;
        flushSeq[tail] = seq;
        flushLsn[tail] = lsn;
        flushCount++;
    }

    /** The standby applied every frame up to {@code seq}. */
    void onAcked(final long seq)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            ackedSeq = Math.max(ackedSeq, seq);
            long lsn = ackedLsn;
            while (sentCount > 0 && sentSeq[sentHead] <= seq)
            {
                lsn = Math.max(lsn, sentLsn[sentHead]);
                sentHead = (sentHead + 1) % sentSeq.length;
                sentCount--;
            }
            ackedLsn = lsn;
            ready = drain(received, Math.max(ackedLsn, releasedLsn));
        }
        ready.forEach(Runnable::run);
    }

    /** The standby has every frame up to {@code seq} on stable storage. */
    void onFlushed(final long seq)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            flushedSeq = Math.max(flushedSeq, seq);
            long lsn = durableLsn;
            while (flushCount > 0 && flushSeq[flushHead] <= seq)
            {
                lsn = Math.max(lsn, flushLsn[flushHead]);
                flushHead = (flushHead + 1) % flushSeq.length;
                flushCount--;
            }
            durableLsn = lsn;
            ready = drain(durable, Math.max(durableLsn, releasedLsn));
        }
        ready.forEach(Runnable::run);
    }

    /**
     * The standby will not answer for writes up to {@code lsn} (link down, log overflow): complete their
     * waiters now, as degraded, and forget what was in flight.
     */
    void release(final long lsn)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            releasedLsn = Math.max(releasedLsn, lsn);
            sentCount = 0;
            flushCount = 0;
            ready = drain(received, Long.MAX_VALUE);
            ready.addAll(drain(durable, Long.MAX_VALUE));
            degraded += ready.size();
        }
        ready.forEach(Runnable::run);
    }

    /** Runs {@code action} once the standby holds write {@code lsn} (0: a write that was not logged: now). */
    public void whenReceived(final long lsn, final Runnable action)
    {
        if (!register(received, lsn, action, false))
        {
            action.run();
        }
    }

    /** Runs {@code action} once the standby has write {@code lsn} and all before it on stable storage. */
    public void whenDurable(final long lsn, final Runnable action)
    {
        if (register(durable, lsn, action, true))
        {
            flushWakeup.run();
        }
        else
        {
            action.run();
        }
    }

    private boolean register(final PriorityQueue<Waiter> queue, final long lsn, final Runnable action,
        final boolean flush)
    {
        synchronized (lock)
        {
            if (lsn <= 0 || lsn <= releasedLsn || lsn <= (flush ? durableLsn : ackedLsn))
            {
                return false;
            }
            queue.add(new Waiter(lsn, action));
            if (flush)
            {
                flushWantedLsn = Math.max(flushWantedLsn, lsn);
            }
            return true;
        }
    }

    /** The highest lsn someone waits to see durable on the standby (the sender sends a FLUSH for it). */
    long flushWanted()
    {
        synchronized (lock)
        {
            return flushWantedLsn;
        }
    }

    /** A completion given at once because no peer was streaming (the caller knows; we only count). */
    void noteDegraded()
    {
        synchronized (lock)
        {
            degraded++;
        }
    }

    /** Completions given without the standby's answer (link down, log overflow, no peer streaming). */
    public long degraded()
    {
        synchronized (lock)
        {
            return degraded;
        }
    }

    private static List<Runnable> drain(final PriorityQueue<Waiter> queue, final long upTo)
    {
        final List<Runnable> out = new ArrayList<>();
        while (!queue.isEmpty() && queue.peek().lsn <= upTo)
        {
            out.add(queue.poll().action);
        }
        return out;
    }

    private static long[] grow(final long[] ring, final int head, final int count)
    {
        final long[] bigger = new long[ring.length * 2];
        for (int i = 0; i < count; i++)
        {
            bigger[i] = ring[(head + i) % ring.length];
        }
        return bigger;
    }
}
