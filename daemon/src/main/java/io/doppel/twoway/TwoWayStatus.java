package io.doppel.twoway;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a two-way volume's link did, for {@code /status} ("twoWay") and the metrics: blocks sent and received,
 * what each received version was resolved to, and the conflicts. Counters only; updated by the link's threads.
 */
public final class TwoWayStatus
{
    /** Block versions sent to the peer, and received from it. */
    public final AtomicLong sentBlocks = new AtomicLong();
    public final AtomicLong receivedBlocks = new AtomicLong();
    /** Received versions written here (they had seen this node's version), and ignored (this node's had seen them). */
    public final AtomicLong appliedBlocks = new AtomicLong();
    public final AtomicLong ignoredBlocks = new AtomicLong();
    /** Concurrent versions: the peer's won (written here) or this node's won (kept); each is in the conflict log. */
    public final AtomicLong conflictsWonByPeer = new AtomicLong();
    public final AtomicLong conflictsWonHere = new AtomicLong();
    /** Local writes (blocks) since start. */
    public final AtomicLong localBlockWrites = new AtomicLong();
    private final String node;
    private final java.util.List<String> nodes;
    private final java.util.function.LongSupplier clock;

    public TwoWayStatus(final String node, final java.util.List<String> nodes, final java.util.function.LongSupplier clock)
    {
        this.node = node;
        this.nodes = nodes;
        this.clock = clock;
    }

    public long conflicts()
    {
        return conflictsWonByPeer.get() + conflictsWonHere.get();
    }

    public Map<String, Object> toMap()
    {
        final Map<String, Object> m = new LinkedHashMap<>();
        m.put("node", node);
        m.put("slot", nodes.indexOf(node));
        m.put("nodes", nodes);
        m.put("clock", HybridClock.format(clock.getAsLong()));
        m.put("localBlockWrites", localBlockWrites.get());
        m.put("sentBlocks", sentBlocks.get());
        m.put("receivedBlocks", receivedBlocks.get());
        m.put("appliedBlocks", appliedBlocks.get());
        m.put("ignoredBlocks", ignoredBlocks.get());
        m.put("conflicts", conflicts());
        m.put("conflictsWonByPeer", conflictsWonByPeer.get());
        m.put("conflictsWonHere", conflictsWonHere.get());
        return m;
    }
}
