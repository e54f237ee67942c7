package io.doppel.replication;

import io.doppel.log.Log;

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

    /** Pairs (seq, lsn) in seq order: which frame carries the end of which write. */
    private static final class SeqToLsn
    {
        private long[] seqs = new long[1024];
        private long[] lsns = new long[1024];
        private int head;
        private int count;

        void add(final long seq, final long lsn)
        {
            if (count == seqs.length)
            {
                seqs = grow(seqs, head, count);
                lsns = grow(lsns, head, count);
                head = 0;
            }
            final int tail = (head + count) % seqs.length;
            seqs[tail] = seq;
            lsns[tail] = lsn;
            count++;
        }

        /** Removes the pairs up to {@code seq}; returns the highest lsn among them, at least {@code floor}. */
        long removeUpTo(final long seq, final long floor)
        {
            long lsn = floor;
            while (count > 0 && seqs[head] <= seq)
            {
                lsn = Math.max(lsn, lsns[head]);
                head = (head + 1) % seqs.length;
                count--;
            }
            return lsn;
        }

        void clear()
        {
            count = 0;
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

    /** One acknowledgement stream: ACK (applied) or FLUSHED (on stable storage). */
    private static final class Level
    {
        final PriorityQueue<Waiter> waiters = new PriorityQueue<>((a, b) -> Long.compare(a.lsn, b.lsn));
        final SeqToLsn sent = new SeqToLsn();
        /** Highest seq answered: an answer may overtake the sender's bookkeeping. */
        long answeredSeq;
        long doneLsn;
    }

    private final Object lock = new Object();
    private final Level received = new Level();
    private final Level durable = new Level();
    private long releasedLsn;
    private long flushWantedLsn;
    private long degraded;
    private volatile Runnable flushWakeup = () -> { };

    /** Called (outside any lock of ours) when a durability wait is registered, to wake the sender. */
    void onFlushWanted(final Runnable wakeup)
    {
        flushWakeup = wakeup;
    }

    /** The sender handed the frame {@code seq}, which ends the write {@code lsn}, to the link. */
    void onSent(final long seq, final long lsn)
    {
        sent(received, seq, lsn);
    }

    /** The sender sent FLUSH frame {@code seq}, covering every write up to {@code lsn}. */
    void onFlushSent(final long seq, final long lsn)
    {
        sent(durable, seq, lsn);
    }

    /** The highest lsn the standby is known to hold together with every write before it. */
    long receivedLsn()
    {
        synchronized (lock)
        {
            return received.doneLsn;
        }
    }

    /** The standby applied every frame up to {@code seq}. */
    void onAcked(final long seq)
    {
        answered(received, seq);
    }

    /** The standby has every frame up to {@code seq} on stable storage. */
    void onFlushed(final long seq)
    {
        // Durable implies received: the standby may send FLUSHED before the ACK of the frames ahead
        // of it, and replies waiting for "received" must not run after a DISC's close.
        answered(received, seq);
        answered(durable, seq);
    }

    private void sent(final Level level, final long seq, final long lsn)
    {
        List<Runnable> ready = List.of();
        synchronized (lock)
        {
            if (seq <= level.answeredSeq)
            {
                level.doneLsn = Math.max(level.doneLsn, lsn);
                ready = drain(level.waiters, Math.max(level.doneLsn, releasedLsn));
            }
            else
            {
                level.sent.add(seq, lsn);
            }
        }
        runAll(ready);
    }

    private void answered(final Level level, final long seq)
    {
        final List<Runnable> ready;
        synchronized (lock)
        {
            level.answeredSeq = Math.max(level.answeredSeq, seq);
            level.doneLsn = level.sent.removeUpTo(seq, level.doneLsn);
            ready = drain(level.waiters, Math.max(level.doneLsn, releasedLsn));
        }
        runAll(ready);
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
            received.sent.clear();
            durable.sent.clear();
            ready = drain(received.waiters, Long.MAX_VALUE);
            ready.addAll(drain(durable.waiters, Long.MAX_VALUE));
            degraded += ready.size();
        }
        runAll(ready);
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

    private boolean register(final Level level, final long lsn, final Runnable action, final boolean flush)
    {
        synchronized (lock)
        {
            if (lsn <= 0 || lsn <= level.doneLsn)
            {
                return false;
            }
            if (lsn <= releasedLsn)
            {
                degraded++; // the standby was never going to answer for this one
                return false;
            }
            level.waiters.add(new Waiter(lsn, action));
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

    /** Runs each completion; one that throws is logged and does not stop the others. */
    private static void runAll(final List<Runnable> ready)
    {
        for (final Runnable action : ready)
        {
            try
            {
                action.run();
            }
            catch (final RuntimeException | Error e)
            {
                Log.error("acks", "a write completion failed: " + e);
            }
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
}
