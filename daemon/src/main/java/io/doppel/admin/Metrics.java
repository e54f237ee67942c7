package io.doppel.admin;

import io.doppel.nbd.NbdExport;
import io.doppel.net.ConnectionGate;
import io.doppel.net.LinkSecurity;
import io.doppel.replication.LatencyRecorder;
import io.doppel.replication.VolumeState;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.ToDoubleFunction;

/**
 * The node's meters in Micrometer, scraped as Prometheus text at {@code GET /metrics}. Counters and gauges
 * read the same {@link VolumeState} fields {@code /status} shows, on scrape; the two latency histograms
 * (NBD requests, standby acknowledgements) are recorded as they happen, through {@link LatencyRecorder},
 * into fixed buckets without allocating. Names start with {@code doppel_}; each has a description and a
 * base unit.
 */
public final class Metrics
{
    /** Histogram buckets: from 50 µs (a page-cache write) to 10 s (a flush on a slow disk). */
    private static final Duration[] BUCKETS = {
        Duration.ofNanos(50_000), Duration.ofNanos(100_000), Duration.ofNanos(250_000), Duration.ofNanos(500_000),
        Duration.ofMillis(1), Duration.ofNanos(2_500_000), Duration.ofMillis(5), Duration.ofMillis(10),
        Duration.ofMillis(25), Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(250),
        Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofMillis(2500), Duration.ofSeconds(10)};

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final String node;

    public Metrics(final String node, final List<VolumeState> volumes)
    {
        this.node = node;
        volumes.forEach(this::add);
    }

    /**
     * Registers the node's limit meters: connections open and refused per listener, NBD requests refused for
     * their size, and how often a standby link stopped reading because its read-ahead was full.
     */
    public void addLimits(final List<ConnectionGate> gates, final LongAdder oversizedNbdRequests,
        final LongAdder readAheadStalls)
    {
        for (final ConnectionGate g : gates)
        {
            final Tags tags = Tags.of("node", node, "listener", g.listener());
            Gauge.builder("doppel.open", g, ConnectionGate::open).description(
                "Connections open on this kind of listener").baseUnit("connections").tags(tags).register(registry);
            FunctionCounter.builder("doppel.refused", g, ConnectionGate::refusedOpen).description(
                "Connections closed unread by [limits]: max-open (nbd-clients, peer-links) or rate (connection-rate)").baseUnit("connections")
                .tags(tags.and("reason", "max-open")).register(registry);
            FunctionCounter.builder("doppel.refused", g, ConnectionGate::refusedRate).description(
                "Connections closed unread by [limits]: max-open (nbd-clients, peer-links) or rate (connection-rate)").baseUnit("connections")
                .tags(tags.and("reason", "rate")).register(registry);
        }
        FunctionCounter.builder("doppel.nbd.oversized", oversizedNbdRequests, LongAdder::sum).description(
            "NBD requests refused because they exceed [limits].nbd-request").baseUnit("requests")
            .tags("node", node).register(registry);
        FunctionCounter.builder("doppel.link.read.ahead.full", readAheadStalls, LongAdder::sum).description(
            "Times a standby link stopped reading because [limits].peer-in-flight bytes waited to be applied")
            .baseUnit("events").tags("node", node).register(registry);
    }

    /**
     * Registers {@code doppel_admin_refused_total{reason}}: admin requests refused by {@code guard} (no verb
     * header, no admin token, a wrong one). No base unit, so the Prometheus name is exactly that.
     */
    public void addAdmin(final AdminGuard guard)
    {
        for (final AdminGuard.Reason reason : AdminGuard.Reason.values())
        {
            FunctionCounter.builder("doppel.admin.refused", guard, g -> g.refused(reason)).description(
                "State-changing admin requests refused: no X-Doppel-Verb header, no admin token, or a wrong one")
                .tags("node", node, "reason", reason.label()).register(registry);
        }
    }

    /** Registers the count of peer links refused at authentication, one series per reason. */
    public void addLinkSecurity(final LinkSecurity security)
    {
        for (final String reason : LinkSecurity.REASONS)
        {
            FunctionCounter.builder("doppel.link.auth.failures", security, s -> s.failures(reason)).description(
                "Peer links refused at authentication, on either end: wrong or missing pre-shared key (psk,"
                    + " missing-auth), certificate not trusted (certificate), pin mismatch (fingerprint), certificate or"
                    + " name of another node (identity), plaintext on a TLS port (plaintext), other TLS failures (tls),"
                    + " refused by the other end (refused-by-peer)")
                .tags("node", node, "reason", reason).register(registry);
        }
    }

    /**
     * Registers a volume group's gauges: {@code doppel_group_members} (member volumes this node holds) and
     * {@code doppel_group_missing_files} (members whose file disappeared or was replaced on the primary). No
     * base unit, so the Prometheus names are exactly these; strong references, as the suppliers are lambdas
     * nothing else holds (a gauge's weak reference would read NaN after the next GC).
     */
    public void addGroup(final String group, final java.util.function.IntSupplier members,
        final java.util.function.IntSupplier missing)
    {
        final Tags tags = Tags.of("node", node, "group", group);
        Gauge.builder("doppel.group.members", members, s -> s.getAsInt()).description(
            "Member volumes of a volume group (a directory or glob of images) on this node")
            .strongReference(true).tags(tags).register(registry);
        Gauge.builder("doppel.group.missing.files", missing, s -> s.getAsInt()).description(
            "Members of a volume group whose file disappeared or was replaced on the primary (their standby copies"
                + " are kept)").strongReference(true).tags(tags).register(registry);
    }

    /** Registers a volume's meters (at start, and for a volume a live reload added). */
    public void add(final VolumeState v)
    {
        final Tags tags = Tags.of("node", node, "volume", v.config().name(), "peer", v.config().peer());
        counter(v, tags, "doppel.replication.sent", "bytes", "Bytes of frames sent on the peer link",
            VolumeState::bytesSent);
        counter(v, tags, "doppel.replication.received", "bytes", "Bytes of frames received on the peer link",
            VolumeState::bytesReceived);
        counter(v, tags, "doppel.replication.blocks.sent", "blocks", "Blocks sent (data and zero frames)",
            VolumeState::blocksSent);
        counter(v, tags, "doppel.replication.blocks.received", "blocks", "Blocks received and applied",
            VolumeState::blocksReceived);
        counter(v, tags, "doppel.compression.saved", "bytes", "Bytes saved by compression on sent blocks",
            VolumeState::compressionSavedBytes);
        counter(v, tags, "doppel.zero.elided", "bytes", "Bytes of zero blocks sent as ZERO frames without payload",
            VolumeState::zeroBytes);
        counter(v, tags, "doppel.log.overflows", "events",
            "Times the replication log overflowed and the volume fell back to catch-up (back-pressure)",
            VolumeState::logOverflows);
        counter(v, tags, "doppel.acks.degraded", "replies",
            "NBD replies given without the standby's answer (link down, overflow, no peer)", VolumeState::degradedAcks);
        counter(v, tags, "doppel.disk.errors", "errors",
            "Writes and flushes of this node's image that failed (disk full, I/O error)", VolumeState::diskErrors);
        if (v.twoWay() != null)
        {
            final io.doppel.twoway.TwoWayStatus t = v.twoWay();
            counter(v, tags.and("winner", "here"), "doppel.conflicts", "conflicts",
                "Two-way conflicts resolved on this node (both nodes wrote a block concurrently), by whose write won",
                s -> t.conflictsWonHere.get());
            counter(v, tags.and("winner", "peer"), "doppel.conflicts", "conflicts",
                "Two-way conflicts resolved on this node (both nodes wrote a block concurrently), by whose write won",
                s -> t.conflictsWonByPeer.get());
            counter(v, tags.and("outcome", "applied"), "doppel.twoway.versions", "blocks",
                "Block versions received on a two-way link, by what was done with them",
                s -> t.appliedBlocks.get());
            counter(v, tags.and("outcome", "ignored"), "doppel.twoway.versions", "blocks",
                "Block versions received on a two-way link, by what was done with them",
                s -> t.ignoredBlocks.get());
        }
        counter(v, tags, "doppel.link.connects", "connections", "Peer links established (connection state changes)",
            VolumeState::connects);
        counter(v, tags, "doppel.link.disconnects", "connections",
            "Peer links lost: closed, cut or timed out (connection state changes)", VolumeState::disconnects);
        counter(v, tags, "doppel.link.stalls", "events",
            "Times sending waited for the peer link to drain: the network or the standby could not keep up"
                + " (back-pressure)", VolumeState::linkStalls);
        gauge(v, tags, "doppel.dirty", "bytes", "Bytes marked in the dirty map (whole blocks)", VolumeState::dirtyBytes);
        gauge(v, tags, "doppel.inflight", "bytes", "Bytes sent to the standby and not yet acknowledged",
            VolumeState::inFlightBytes);
        gauge(v, tags, "doppel.log.queued", "bytes", "Bytes waiting in the replication log", VolumeState::logBytes);
        gauge(v, tags, "doppel.replication.lag", "bytes",
            "Bytes the standby does not hold yet: dirty, in flight and queued in the log",
            s -> s.dirtyBytes() + s.inFlightBytes() + s.logBytes());
        final AtomicLong caughtUpNanos = new AtomicLong(System.nanoTime());
        gauge(v, tags, "doppel.replication.lag.age", "seconds",
            "Age of the oldest write the standby does not hold yet (0 when it holds every write). While streaming,"
                + " the age of the write being timed; while catching up or disconnected, the time since the standby"
                + " last held every write", s -> lagSeconds(s, caughtUpNanos));
        gauge(v, tags, "doppel.sync.remaining", "bytes", "Bytes of the current sync or compare not yet done",
            s -> Math.max(0, s.syncTotalBytes() - s.syncedBytes()));
        gauge(v, tags, "doppel.sync.total", "bytes", "Bytes the current or last sync or compare covers",
            VolumeState::syncTotalBytes);
        gauge(v, tags, "doppel.sync.eta", "seconds",
            "Seconds until the current sync or compare ends at the pace it has kept so far (0: none runs;"
                + " -1: nothing done yet)", VolumeState::syncEtaSeconds);
        gauge(v, tags, "doppel.link.up", "state", "1 while the peer link is connected", s -> s.connected() ? 1 : 0);
        gauge(v, tags, "doppel.standby.uptodate", "state", "1 while the standby copy is up to date",
            s -> s.disk() == VolumeState.Disk.UP_TO_DATE ? 1 : 0);
        v.latencyRecorder(latencies(tags));
    }

    private LatencyRecorder latencies(final Tags tags)
    {
        final Timer ack = timer("doppel.replication.ack.latency", "Time from sending a frame to the peer until it"
            + " acknowledged having it (sampled: one frame timed at a time)", tags);
        final Timer lag = timer("doppel.replication.write.lag", "Replication lag: time from a write on the primary"
            + " until the standby holds it (sampled: one write timed at a time; writes made while catching up are"
            + " not timed)", tags);
        final Timer[] nbd = new Timer[NbdExport.COMMANDS.size()];
        for (int c = 0; c < nbd.length; c++)
        {
            if (!"disc".equals(NbdExport.COMMANDS.get(c)))
            {
                nbd[c] = timer("doppel.nbd.requests", "NBD requests answered successfully, by command, and the time"
                    + " from a request's arrival to its reply (a write's reply waits for the ack level)",
                    tags.and("command", NbdExport.COMMANDS.get(c)));
            }
        }
        return new LatencyRecorder()
        {
            @Override
            public void ack(final long nanos)
            {
                ack.record(nanos, TimeUnit.NANOSECONDS);
            }

            @Override
            public void lag(final long nanos)
            {
                lag.record(nanos, TimeUnit.NANOSECONDS);
            }

            @Override
            public void nbd(final int command, final long nanos)
            {
                if (command >= 0 && command < nbd.length && nbd[command] != null)
                {
                    nbd[command].record(nanos, TimeUnit.NANOSECONDS);
                }
            }
        };
    }

    private Timer timer(final String name, final String help, final Tags tags)
    {
        return Timer.builder(name).description(help).tags(tags).serviceLevelObjectives(BUCKETS).register(registry);
    }

    private static double lagSeconds(final VolumeState s, final AtomicLong caughtUpNanos)
    {
        final long now = System.nanoTime();
        final boolean caughtUp = s.replication() == VolumeState.Replication.STREAMING
            && s.disk() == VolumeState.Disk.UP_TO_DATE && s.dirtyBytes() == 0 && s.logBytes() == 0
            && s.ackedSeq() >= s.sentSeq();
        if (caughtUp)
        {
            caughtUpNanos.set(now);
            return 0;
        }
        final boolean streaming = s.replication() == VolumeState.Replication.STREAMING
            && s.disk() == VolumeState.Disk.UP_TO_DATE && s.dirtyBytes() == 0;
        if (streaming)
        {
            // Writes queue in the log and reach the standby in order: the timed write tells their age.
            caughtUpNanos.set(now);
            return s.unackedWriteAgeSeconds();
        }
        return (now - caughtUpNanos.get()) / 1e9;
    }

    private void counter(final VolumeState v, final Tags tags, final String name, final String unit, final String help,
        final ToDoubleFunction<VolumeState> f)
    {
        FunctionCounter.builder(name, v, f).description(help).baseUnit(unit).tags(tags).register(registry);
    }

    private void gauge(final VolumeState v, final Tags tags, final String name, final String unit, final String help,
        final ToDoubleFunction<VolumeState> f)
    {
        Gauge.builder(name, v, f).description(help).baseUnit(unit).tags(tags).register(registry);
    }

    /** The Prometheus text exposition. */
    public String scrape()
    {
        return registry.scrape();
    }
}
