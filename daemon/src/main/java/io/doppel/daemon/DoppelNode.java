package io.doppel.daemon;

import io.doppel.admin.AdminServer;
import io.doppel.admin.StatusReport;
import io.doppel.config.DoppelConfig;
import io.doppel.config.PeerConfig;
import io.doppel.config.Units;
import io.doppel.config.VolumeConfig;
import io.doppel.log.Log;
import io.doppel.nbd.NbdExport;
import io.doppel.nbd.NbdServer;
import io.doppel.net.Transport;
import io.doppel.replication.AckTracker;
import io.doppel.replication.PeerServer;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.ReplicationLog;
import io.doppel.replication.ReplicationSender;
import io.doppel.replication.StandbyVolume;
import io.doppel.replication.VolumeState;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.concurrent.DefaultEventExecutorGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutorGroup;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * One running doppel node: opens every configured volume (primary or standby), listens for peer links,
 * starts a replication sender per primary volume and serves the admin endpoint. {@link #close()} stops
 * it all and flushes the volumes.
 */
public final class DoppelNode implements AutoCloseable
{
    static final long STANDBY_FLUSH_INTERVAL_MS = 1_000;

    private final DoppelConfig config;
    private final Map<String, PrimaryVolume> primaries = new LinkedHashMap<>();
    private final Map<String, StandbyVolume> standbys = new LinkedHashMap<>();
    private final List<VolumeState> states = new ArrayList<>();
    private final List<ReplicationSender> senders = new ArrayList<>();
    private Transport transport;
    private EventExecutorGroup applyGroup;
    private PeerServer peerServer;
    private AdminServer admin;
    private ScheduledExecutorService flusher;
    private EventExecutorGroup nbdWorkers;
    private final List<NbdServer> nbdServers = new ArrayList<>();

    private DoppelNode(final DoppelConfig config)
    {
        this.config = config;
    }

    /** Opens and starts everything; on failure releases what was opened and rethrows. */
    public static DoppelNode start(final DoppelConfig config) throws IOException
    {
        final DoppelNode node = new DoppelNode(config);
        try
        {
            node.open();
            return node;
        }
        catch (final IOException | RuntimeException e)
        {
            node.close();
            throw e;
        }
    }

    private void open() throws IOException
    {
        final String name = config.node().name();
        Files.createDirectories(config.node().dataDir());
        for (final VolumeConfig vc : config.volumes())
        {
            openVolume(vc);
        }
        transport = Transport.create("doppel-io", 2);
        applyGroup = new DefaultEventExecutorGroup(Math.max(1, Math.min(4, standbys.size())),
            new DefaultThreadFactory("doppel-apply", true));
        peerServer = PeerServer.bind(config.node(), transport, applyGroup, new VolumeDirectory());
        for (final PrimaryVolume p : primaries.values())
        {
            final PeerConfig peer = config.peer(p.config().peer()).orElseThrow();
            final ReplicationSender sender = new ReplicationSender(p, config.node(), peer, transport);
            senders.add(sender);
            sender.start();
        }
        startFlusher();
        startNbd();
        admin = AdminServer.start(name, config.node().admin(), this::status);
        Log.info(name + "/node", "ready: " + primaries.size() + " primary and " + standbys.size()
            + " standby volume(s)");
    }

    /** One NBD server per distinct {@code nbd} address; the export name picks the volume. */
    private void startNbd() throws IOException
    {
        final Map<String, Map<String, NbdExport>> byAddress = new LinkedHashMap<>();
        for (final VolumeConfig vc : config.volumes())
        {
            if (vc.hasNbd())
            {
                final NbdExport export = primaries.containsKey(vc.name()) ? primaries.get(vc.name())
                    : standbys.get(vc.name());
                byAddress.computeIfAbsent(vc.nbd(), a -> new LinkedHashMap<>()).put(vc.name(), export);
            }
        }
        if (byAddress.isEmpty())
        {
            return;
        }
        nbdWorkers = new DefaultEventExecutorGroup(2, new DefaultThreadFactory("doppel-nbd", true));
        for (final Map.Entry<String, Map<String, NbdExport>> e : byAddress.entrySet())
        {
            nbdServers.add(NbdServer.bind(config.node().name(), e.getKey(), e.getValue(), transport, nbdWorkers));
        }
    }

    /**
     * Writes standby copies back to disk every second. The page cache would otherwise hold gigabytes of
     * a sync as dirty pages (below the kernel's background threshold) and the flush at the end of a
     * sync would then wait for all of it; this overlaps the disk writes with the transfer.
     */
    private void startFlusher()
    {
        if (standbys.isEmpty())
        {
            return;
        }
        flusher = Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("doppel-flusher", true));
        flusher.scheduleWithFixedDelay(() ->
        {
            for (final StandbyVolume s : standbys.values())
            {
                try
                {
                    s.volume().flush();
                }
                catch (final RuntimeException | InternalError e)
                {
                    Log.error(config.node().name() + "/" + s.name(), "background flush failed: " + e);
                }
            }
        }, STANDBY_FLUSH_INTERVAL_MS, STANDBY_FLUSH_INTERVAL_MS, TimeUnit.MILLISECONDS);
    }

    private void openVolume(final VolumeConfig vc) throws IOException
    {
        final Volume volume;
        try
        {
            volume = Volume.open(vc.path(), vc.size());
        }
        catch (final IOException e)
        {
            throw new IOException("volume " + vc.name() + ": " + e.getMessage(), e);
        }
        final MetadataFile metadata;
        try
        {
            metadata = MetadataFile.openOrCreate(vc.metadataPath(config.node().dataDir()), volume.size(),
                vc.blockSize());
        }
        catch (final IOException | RuntimeException e)
        {
            volume.close();
            throw new IOException("volume " + vc.name() + ": " + e.getMessage(), e);
        }
        final VolumeState state = new VolumeState(vc, volume.size());
        states.add(state);
        if (metadata.processCrashOnly())
        {
            Log.warn(config.node().name() + "/" + vc.name(), "metadata " + metadata.path() + " was not closed cleanly"
                + " (the process died; the machine did not): the dirty map is exact, " + metadata.recoveredInFlight()
                + " block(s) that were in flight are dirty again");
        }
        else if (metadata.machineCrash())
        {
            Log.warn(config.node().name() + "/" + vc.name(), "metadata " + metadata.path() + " was not closed cleanly"
                + " in an earlier boot (machine crash): " + metadata.activityLog().recoveredExtents().length
                + " activity-log extent(s) will be compared with the peer"
                + (metadata.activityLog().damaged() ? "; the activity log is damaged, so the whole volume will be compared"
                    : ""));
        }
        if (vc.role() == VolumeConfig.Role.PRIMARY)
        {
            metadata.role(MetadataFile.ROLE_PRIMARY);
            metadata.ensureGeneration();
            final AckTracker acks = new AckTracker();
            final ReplicationLog log = new ReplicationLog(volume, metadata, PooledByteBufAllocator.DEFAULT,
                vc.logBytes(), state, acks);
            primaries.put(vc.name(), new PrimaryVolume(vc, volume, metadata, state, log, acks));
        }
        else
        {
            metadata.role(MetadataFile.ROLE_STANDBY);
            standbys.put(vc.name(), new StandbyVolume(vc, volume, metadata, state));
        }
        Log.info(config.node().name() + "/" + vc.name(), "opened " + vc.role().configName() + " volume "
            + vc.path() + " (" + Units.formatBytes(volume.size()) + ", block-size " + vc.blockSize()
            + ", compression " + vc.compression().configName() + (volume.isBlockDevice() ? ", block device" : "")
            + "), metadata " + metadata.path());
    }

    public DoppelConfig config()
    {
        return config;
    }

    public PrimaryVolume primary(final String name)
    {
        return primaries.get(name);
    }

    public StandbyVolume standby(final String name)
    {
        return standbys.get(name);
    }

    /** The /status document. */
    public Map<String, Object> status()
    {
        return StatusReport.of(config.node().name(), states);
    }

    public AdminServer admin()
    {
        return admin;
    }

    @Override
    public void close()
    {
        for (final ReplicationSender s : senders)
        {
            try
            {
                s.close();
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
        if (admin != null)
        {
            admin.close();
        }
        if (flusher != null)
        {
            flusher.shutdownNow();
        }
        nbdServers.forEach(NbdServer::close);
        if (peerServer != null)
        {
            peerServer.close();
        }
        // Links before loops: a link's last events run on the apply executor and the event loop.
        standbys.values().forEach(StandbyVolume::disconnect);
        if (transport != null)
        {
            transport.close();
        }
        if (applyGroup != null)
        {
            applyGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        }
        if (nbdWorkers != null)
        {
            nbdWorkers.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        }
        for (final AutoCloseable v : allVolumes())
        {
            try
            {
                v.close();
            }
            catch (final Exception e)
            {
                Log.error(config.node().name() + "/node", "closing a volume: " + e.getMessage());
            }
        }
    }

    private List<AutoCloseable> allVolumes()
    {
        final List<AutoCloseable> all = new ArrayList<>(primaries.values());
        all.addAll(standbys.values());
        return all;
    }

    /** The volume lookup that peer links use. */
    private final class VolumeDirectory implements io.doppel.replication.LinkTargets
    {
        @Override
        public StandbyVolume standby(final String name)
        {
            return standbys.get(name);
        }

        @Override
        public boolean isPrimaryHere(final String name)
        {
            return primaries.containsKey(name);
        }

        @Override
        public String describe()
        {
            if (primaries.isEmpty() && standbys.isEmpty())
            {
                return "it has no volumes";
            }
            return "it has " + config.volumes().stream().map(v -> v.name() + " as " + v.role().configName())
                .collect(Collectors.joining(", "));
        }
    }
}
