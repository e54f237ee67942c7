package io.doppel.daemon;

import io.doppel.log.Log;
import io.doppel.replication.VolumeState;
import io.netty.util.concurrent.DefaultThreadFactory;

import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Tells systemd what the running node is doing: {@code READY=1} once every volume is open and every
 * socket listens (when {@link DoppelNode#start} returned), a one-line {@code STATUS=} whenever it
 * changes, {@code WATCHDOG=1} at half the watchdog interval, and {@code STOPPING=1} on shutdown.
 */
final class ServiceNotifier implements DoppelNode.ReloadListener
{
    static final long STATUS_INTERVAL_MS = 1_000;

    private final SdNotify sd;
    private final DoppelNode node;
    private final ScheduledExecutorService timer;
    private volatile String lastStatus = "";
    /** Shown before the summary until a reload is accepted: an operator sees a refused one in systemctl status. */
    private volatile String reloadNote = "";

    private ServiceNotifier(final SdNotify sd, final DoppelNode node)
    {
        this.sd = sd;
        this.node = node;
        this.timer = Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("doppel-sd-notify", true));
    }

    /** Starts notifying when systemd asked for it ({@code NOTIFY_SOCKET}); null otherwise. */
    static ServiceNotifier start(final DoppelNode node, final Map<String, String> env)
    {
        final SdNotify sd;
        try
        {
            sd = SdNotify.fromEnvironment(env);
        }
        catch (final RuntimeException | LinkageError e)
        {
            Log.warn(node.config().node().name() + "/node", "cannot notify systemd: " + e.getMessage());
            return null;
        }
        if (sd == null)
        {
            return null;
        }
        final ServiceNotifier n = new ServiceNotifier(sd, node);
        final String status = n.summary();
        n.lastStatus = status;
        if (!sd.send("READY=1\nSTATUS=" + status))
        {
            Log.warn(node.config().node().name() + "/node", "could not send READY=1 to systemd at " + sd.socketName());
        }
        n.timer.scheduleWithFixedDelay(n::statusIfChanged, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS, TimeUnit.MILLISECONDS);
        final long watchdog = SdNotify.watchdogIntervalMillis(env);
        if (watchdog > 0)
        {
            n.timer.scheduleAtFixedRate(() -> sd.send("WATCHDOG=1"), 0, watchdog, TimeUnit.MILLISECONDS);
            Log.info(node.config().node().name() + "/node", "systemd watchdog: pinging every " + watchdog + " ms");
        }
        return n;
    }

    private void statusIfChanged()
    {
        try
        {
            final String status = summary();
            if (!status.equals(lastStatus) && sd.send("STATUS=" + status))
            {
                lastStatus = status;
            }
        }
        catch (final RuntimeException e)
        {
            Log.debug("sd-notify", "status update failed: " + e);
        }
    }

    /** One line, e.g. {@code vm1: primary streaming, standby up-to-date, 0 B dirty | vm2: standby ...}. */
    String summary()
    {
        return reloadNote + node.volumeStates().stream().map(ServiceNotifier::describe)
            .collect(Collectors.joining(" | "));
    }

    /** systemd (v253+) shows the unit as reloading until the READY=1 that follows. */
    @Override
    public void reloading()
    {
        sd.send("RELOADING=1\nMONOTONIC_USEC=" + TimeUnit.NANOSECONDS.toMicros(monotonicNanos()));
    }

    @Override
    public void reloaded(final ReloadResult result)
    {
        reloadNote = result.accepted() ? "" : "reload refused (see journal): " + result.refused().get(0) + " | ";
        final String status = summary();
        lastStatus = status;
        sd.send("READY=1\nSTATUS=" + status);
    }

    /** CLOCK_MONOTONIC, which System.nanoTime reads on Linux. */
    private static long monotonicNanos()
    {
        return System.nanoTime();
    }

    private static String describe(final VolumeState v)
    {
        final boolean primary = v.config().role() == io.doppel.config.VolumeConfig.Role.PRIMARY;
        final boolean twoWay = v.config().twoWay();
        return v.config().name() + ": " + v.config().role().configName() + " " + v.replication().wireName()
            + (primary ? ", standby " : twoWay ? ", peer " : ", copy ") + v.disk().wireName()
            + (primary || twoWay ? ", " + io.doppel.config.Units.formatBytes(v.dirtyBytes()) + (twoWay ? " owed" : " dirty")
                : "");
    }

    void stopping()
    {
        timer.shutdownNow();
        sd.send("STOPPING=1\nSTATUS=stopping");
        sd.close();
    }
}
