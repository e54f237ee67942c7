package io.doppel.daemon;

import io.doppel.admin.AdminGuard;
import io.doppel.admin.AdminServer;
import io.doppel.admin.AdminToken;
import io.doppel.admin.Metrics;
import io.doppel.admin.StatusReport;
import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import io.doppel.config.DoppelConfig;
import io.doppel.config.PeerConfig;
import io.doppel.config.Units;
import io.doppel.config.VolumeConfig;
import io.doppel.log.Log;
import io.doppel.nbd.NbdExport;
import io.doppel.nbd.NbdLimits;
import io.doppel.nbd.NbdServer;
import io.doppel.net.ConnectionGate;
import io.doppel.net.LinkSecurity;
import io.doppel.net.Transport;
import io.doppel.replication.AckTracker;
import io.doppel.replication.PeerServer;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.ReplicationLog;
import io.doppel.replication.ReplicationSender;
import io.doppel.replication.StandbyVolume;
import io.doppel.replication.VolumeState;
import io.doppel.storage.DiskWriteException;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.concurrent.DefaultEventExecutorGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.EventExecutorGroup;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
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

    /** The config file the node was started from (null when started from a config object): what reload reads. */
    private final Path configFile;
    /** Each conflict log file rotates at this size; this many old files are kept. */
    private static final long CONFLICT_LOG_FILE_BYTES = 64L << 20;
    private static final int CONFLICT_LOG_FILES = 4;
    /** The running config; a live reload replaces it. */
    private volatile DoppelConfig config;
    /** Bounds on NBD clients and peer links; they read {@link #config}'s [limits], so a reload applies. */
    private final ConnectionGate nbdGate;
    private final ConnectionGate peerGate;
    private final NbdLimits nbdLimits;
    private final LongAdder readAheadStalls = new LongAdder();
    private final Map<String, PrimaryVolume> primaries = new java.util.concurrent.ConcurrentHashMap<>();
    private final Map<String, StandbyVolume> standbys = new java.util.concurrent.ConcurrentHashMap<>();
    private final List<VolumeState> states = new CopyOnWriteArrayList<>();
    private final Map<String, ReplicationSender> senders = new java.util.concurrent.ConcurrentHashMap<>();
    private final Map<String, io.doppel.twoway.TwoWayVolume> twoWays = new java.util.concurrent.ConcurrentHashMap<>();
    private final Map<String, io.doppel.replication.TwoWayLink> twoWayLinks = new java.util.concurrent.ConcurrentHashMap<>();
    private final Map<String, io.doppel.watch.FileWatcher> watchers = new java.util.concurrent.ConcurrentHashMap<>();
    /** Volume groups (a directory or glob of images, each a member volume), in config order. */
    private final List<io.doppel.watch.VolumeGroup> groups = new CopyOnWriteArrayList<>();
    private Transport transport;
    private EventExecutorGroup applyGroup;
    private PeerServer peerServer;
    private LinkSecurity linkSecurity;
    private AdminServer admin;
    private ScheduledExecutorService flusher;
    private EventExecutorGroup nbdWorkers;
    private final List<NbdServer> nbdServers = new ArrayList<>();
    /** Set once the node has opened its volumes; read by links that create a group's member. */
    private volatile Metrics metrics;
    private ReloadListener reloadListener = ReloadListener.NONE;
    private boolean closing;

    private DoppelNode(final DoppelConfig config, final Path configFile)
    {
        this.config = config;
        final String component = config.node().name() + "/limits";
        nbdGate = new ConnectionGate("nbd", component, () -> this.config.limits().nbdClients(),
            () -> this.config.limits().connectionRate());
        peerGate = new ConnectionGate("peer", component, () -> this.config.limits().peerLinks(),
            () -> this.config.limits().connectionRate());
        nbdLimits = new NbdLimits(nbdGate, () -> this.config.limits().nbdRequestBytes(), new LongAdder());
        this.configFile = configFile;
    }

    /** Opens and starts everything; on failure releases what was opened and rethrows. */
    public static DoppelNode start(final DoppelConfig config) throws IOException
    {
        return start(config, null);
    }

    /** As {@link #start(DoppelConfig)}, for a config loaded from {@code configFile}, which a reload reads again. */
    public static DoppelNode start(final DoppelConfig config, final Path configFile) throws IOException
    {
        final DoppelNode node = new DoppelNode(config, configFile);
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
        // Before any volume opens: a daemon whose verbs anyone could send must not start at all.
        final AdminGuard guard = new AdminGuard(name, AdminToken.loadOrCreate(config.node().adminTokenFile()));
        for (final VolumeConfig vc : config.volumes())
        {
            if (vc.isGroup())
            {
                openGroup(vc);
            }
            else
            {
                openVolume(vc);
            }
        }
        transport = Transport.create("doppel-io", 2);
        applyGroup = new DefaultEventExecutorGroup(Math.max(1, Math.min(4, standbys.size() + twoWays.size())),
            new DefaultThreadFactory("doppel-apply", true));
        linkSecurity = LinkSecurity.create(config.node(), () -> this.config.peers());
        peerServer = PeerServer.bind(config.node(), transport, applyGroup, new VolumeDirectory(), peerGate,
            () -> config.limits().peerInFlightBytes(), readAheadStalls, linkSecurity);
        for (final PrimaryVolume p : primaries.values())
        {
            startSender(p);
        }
        twoWays.values().forEach(this::startTwoWay);
        watchers.values().forEach(io.doppel.watch.FileWatcher::start);
        startFlusher();
        startNbd();
        metrics = new Metrics(name, states);
        metrics.addLimits(List.of(nbdGate, peerGate), nbdLimits.oversizedRequests(), readAheadStalls);
        metrics.addAdmin(guard);
        metrics.addLinkSecurity(linkSecurity);
        admin = AdminServer.start(name, config.node().admin(), this::status, this::runVerb, metrics::scrape,
            () -> reloadFromFile().toMap(), guard);
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            startGroup(g);
        }
        Log.info(name + "/node", "ready: " + primaries.size() + " primary, " + standbys.size()
            + " standby and " + twoWays.size() + " two-way volume(s)" + (groups.isEmpty() ? "" : ", "
                + groups.size() + " volume group(s) (members are added as they are found)"));
    }

    /** How this node's peer links are secured, with its refusal counts. */
    public LinkSecurity linkSecurity()
    {
        return linkSecurity;
    }

    /** Starts replicating {@code p} to its peer; returns the peer. */
    private PeerConfig startSender(final PrimaryVolume p)
    {
        final PeerConfig peer = config.peer(p.config().peer()).orElseThrow();
        final ReplicationSender sender = new ReplicationSender(p, config.node(), peer, transport, linkSecurity);
        senders.put(p.name(), sender);
        sender.start();
        return peer;
    }

    private static PrimaryVolume newPrimary(final VolumeConfig vc, final Volume volume, final MetadataFile metadata,
        final VolumeState state)
    {
        metadata.role(MetadataFile.ROLE_PRIMARY);
        metadata.ensureGeneration();
        final AckTracker acks = new AckTracker();
        final ReplicationLog log = new ReplicationLog(volume, metadata, PooledByteBufAllocator.DEFAULT, vc.logBytes(),
            state, acks);
        return new PrimaryVolume(vc, volume, metadata, state, log, acks);
    }

    /**
     * promote: this node's standby copy of {@code name} becomes the primary, at once: its NBD export turns
     * read-write and it starts replicating to its peer. Refused while a primary feeds it, and for a copy
     * that is not consistent unless {@code force}. Lasts until the daemon restarts (change role in the
     * config to keep it).
     */
    private synchronized String promote(final String name, final boolean force) throws AdminServer.VerbException
    {
        final StandbyVolume s = standbys.get(name);
        if (s == null)
        {
            throw new AdminServer.VerbException(409, "promote: volume " + name + " is already primary on node "
                + config.node().name());
        }
        checkNotClosing("promote");
        final MetadataFile meta = s.metadata();
        if (!force && (meta.disk() != MetadataFile.Disk.CONSISTENT || meta.copyInDoubt()))
        {
            throw new AdminServer.VerbException(409, "promote: the copy of volume " + name + " is "
                + (meta.copyInDoubt() ? "in doubt (it may have lost writes or hold writes its peer lacks)"
                    : meta.disk().name().toLowerCase(java.util.Locale.ROOT) + " (a sync into it did not finish)")
                + "; serving it could return mixed data. Use --force to promote it anyway");
        }
        if (!s.retire())
        {
            throw new AdminServer.VerbException(409, "promote: primary " + s.config().peer() + " is connected and"
                + " replicating volume " + name + " here; demote it (doppel demote " + name + " on "
                + s.config().peer() + ") or stop it first");
        }
        standbys.remove(name);
        s.disconnect();
        s.volume().flush();
        final VolumeConfig vc = s.config().withRole(VolumeConfig.Role.PRIMARY);
        s.state().config(vc);
        s.state().disk(VolumeState.Disk.UNKNOWN); // now: the state of the peer's copy, not yet known
        final PrimaryVolume p = newPrimary(vc, s.volume(), meta, s.state());
        primaries.put(name, p);
        replaceExport(p);
        final PeerConfig peer = startSender(p);
        Log.warn(config.node().name() + "/" + name, "promoted to primary" + (force ? " (forced)" : "")
            + "; replicating to " + peer.name());
        return "promoted to primary: the NBD export is read-write and replication to " + peer.name() + " starts";
    }

    /**
     * demote: this node's primary copy of {@code name} becomes a standby, at once: replication stops, NBD
     * clients are disconnected and the export turns read-only, and the node accepts the new primary's
     * link. Writes it never replicated make the copy "in doubt": the new primary compares it in whole.
     */
    private synchronized String demote(final String name) throws AdminServer.VerbException
    {
        final PrimaryVolume p = primaries.get(name);
        if (p == null)
        {
            throw new AdminServer.VerbException(409, "demote: volume " + name + " is already standby on node "
                + config.node().name());
        }
        checkNotClosing("demote");
        if (p.watchHashes() != null)
        {
            throw new AdminServer.VerbException(409, "demote: volume " + name + " is watched (source = \"watch\"):"
                + " another program writes " + p.volume().path() + ", so this node cannot take the peer's writes into"
                + " it; stop that program and change the volume's source first");
        }
        // 1. No write changes the image from here on; NBD clients of the read-write export are cut off.
        p.fence();
        final VolumeConfig vc = p.config().withRole(VolumeConfig.Role.STANDBY);
        final StandbyVolume s = new StandbyVolume(vc, p.volume(), p.metadata(), p.state(), false);
        replaceExport(s);
        // 2. Let the standby take what was already written (acknowledged async writes included).
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(DEMOTE_DRAIN_SECONDS);
        while (!(p.inSync() && p.metadata().dirtyMap().inFlightBlocks() == 0) && p.state().connected()
            && System.nanoTime() < deadline)
        {
            sleepQuietly(20);
        }
        // 3. Stop replicating and count what never reached the peer.
        final ReplicationSender sender = senders.remove(name);
        try
        {
            sender.close();
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
        p.stopReplicating();
        p.flush();
        final MetadataFile meta = p.metadata();
        final long unreplicated = meta.dirtyMap().dirtyBlocks();
        if (unreplicated > 0)
        {
            meta.doubtCopy();
        }
        meta.role(MetadataFile.ROLE_STANDBY);
        p.state().config(vc);
        // 4. Only now may the new primary's link attach.
        s.activate();
        primaries.remove(name);
        standbys.put(name, s);
        Log.warn(config.node().name() + "/" + name, "demoted to standby" + (unreplicated > 0 ? "; " + unreplicated
            + " block(s) never reached " + vc.peer() + ": this copy is in doubt and will be compared in whole" : ""));
        return "demoted to standby: the NBD export is read-only"
            + (unreplicated > 0 ? "; " + unreplicated + " block(s) never reached " + vc.peer()
                + " and will be replaced by the new primary's" : "; everything written reached " + vc.peer());
    }

    static final long DEMOTE_DRAIN_SECONDS = 5;

    private static void sleepQuietly(final long millis)
    {
        try
        {
            Thread.sleep(millis);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private void checkNotClosing(final String verb) throws AdminServer.VerbException
    {
        if (closing)
        {
            throw new AdminServer.VerbException(503, verb + ": the daemon is shutting down");
        }
    }

    private void replaceExport(final NbdExport export)
    {
        for (final NbdServer server : nbdServers)
        {
            if (server.serves(export.name()))
            {
                server.replaceExport(export);
            }
        }
    }

    /** One NBD server per distinct {@code nbd} address; the export name picks the volume. */
    private void startNbd() throws IOException
    {
        final Map<String, Map<String, NbdExport>> byAddress = new LinkedHashMap<>();
        for (final VolumeConfig vc : config.volumes())
        {
            if (vc.hasNbd())
            {
                byAddress.computeIfAbsent(vc.nbd(), a -> new LinkedHashMap<>()).put(vc.name(), export(vc.name()));
            }
        }
        for (final Map.Entry<String, Map<String, NbdExport>> e : byAddress.entrySet())
        {
            bindNbd(e.getKey(), e.getValue());
        }
    }

    private NbdExport export(final String name)
    {
        if (twoWays.containsKey(name))
        {
            return twoWays.get(name);
        }
        return primaries.containsKey(name) ? primaries.get(name) : standbys.get(name);
    }

    /** Starts the link that carries {@code tw}'s writes both ways. */
    private void startTwoWay(final io.doppel.twoway.TwoWayVolume tw)
    {
        final io.doppel.replication.TwoWayLink link = new io.doppel.replication.TwoWayLink(tw, config.node(),
            config.peer(tw.config().peer()).orElseThrow(), transport, linkSecurity, applyGroup);
        twoWayLinks.put(tw.name(), link);
        link.start();
    }

    /**
     * Two-way mode: the version vectors and the conflict log beside the metadata. On the first start in
     * two-way mode over an image that already held data, its blocks become this node's first versions,
     * owed to the peer.
     */
    private void openTwoWay(final VolumeConfig vc, final Volume volume, final MetadataFile metadata,
        final VolumeState state, final boolean imageHadData, final String component) throws IOException
    {
        final Path versionsPath = vc.versionsPath(config.node().dataDir());
        final boolean versionsExisted = Files.exists(versionsPath);
        final List<String> nodes = new ArrayList<>(List.of(config.node().name(), vc.peer()));
        java.util.Collections.sort(nodes);
        final long blocks = (volume.size() + vc.blockSize() - 1) / vc.blockSize();
        io.doppel.twoway.VersionVectorFile versions = null;
        io.doppel.twoway.ConflictLog conflicts = null;
        try
        {
            versions = io.doppel.twoway.VersionVectorFile.open(versionsPath, nodes, vc.blockSize(), blocks);
            conflicts = io.doppel.twoway.ConflictLog.open(vc.conflictsPath(config.node().dataDir()),
                CONFLICT_LOG_FILE_BYTES, CONFLICT_LOG_FILES);
        }
        catch (final IOException | RuntimeException e)
        {
            try (metadata)
            {
                if (versions != null)
                {
                    versions.close();
                }
                volume.close();
            }
            throw new IOException("volume " + vc.name() + ": " + describe(e), e);
        }
        metadata.role(MetadataFile.ROLE_NONE);
        final io.doppel.twoway.TwoWayVolume tw = new io.doppel.twoway.TwoWayVolume(vc, volume, metadata, versions,
            conflicts, config.node().name(), state);
        twoWays.put(vc.name(), tw);
        if (!versionsExisted && imageHadData)
        {
            Log.info(component, "first start in two-way mode: reading " + vc.path() + " for the blocks it holds");
            final long seeded = tw.seedFromImage();
            Log.info(component, seeded + " non-zero block(s) become this node's first versions and are sent to "
                + vc.peer() + " (a peer holding the same bytes keeps its copy: equal versions are no conflict)");
        }
    }

    /** TLS for NBD clients, loaded with the first NBD server (null: off). */
    private io.doppel.nbd.NbdTls nbdTls;

    private NbdServer bindNbd(final String address, final Map<String, NbdExport> exports) throws IOException
    {
        if (nbdWorkers == null)
        {
            nbdWorkers = new DefaultEventExecutorGroup(2, new DefaultThreadFactory("doppel-nbd", true));
        }
        if (nbdTls == null && config.node().nbdTls() != null && config.node().nbdTls() != io.doppel.config.NbdTlsMode.OFF)
        {
            nbdTls = io.doppel.nbd.NbdTls.create(config.node().nbdTls(), config.node().tls());
        }
        final NbdServer server = NbdServer.bind(config.node().name(), address, exports, transport, nbdWorkers,
            nbdLimits, nbdTls);
        if (nbdTls != null)
        {
            Log.info(config.node().name() + "/nbd", "NBD on " + address + ": TLS " + (nbdTls.required()
                ? "required" : "offered") + " (NBD_OPT_STARTTLS, client certificates signed by " + config.node().tls().ca()
                + ")");
        }
        nbdServers.add(server);
        return server;
    }

    /**
     * Writes standby copies back to disk every second: the page cache would otherwise hold gigabytes of a
     * sync as dirty pages and the flush at the end of a sync would wait for all of it. A primary's image is
     * forced only while its activity log is half full, so extents can cool.
     */
    private void startFlusher()
    {
        flusher = Executors.newSingleThreadScheduledExecutor(new DefaultThreadFactory("doppel-flusher", true));
        flusher.scheduleWithFixedDelay(() ->
        {
            for (final StandbyVolume s : standbys.values())
            {
                try
                {
                    s.volume().flush();
                }
                catch (final DiskWriteException e)
                {
                    s.diskFault(config.node().name(), e);
                }
                catch (final RuntimeException | InternalError e)
                {
                    Log.error(config.node().name() + "/" + s.name(), "background flush failed: " + e);
                }
            }
            // Until a primary's own writes are on its disk, their activity-log extents stay hot (a machine
            // crash must find them); when the log fills up, force them so extents can cool. (Forcing every
            // second regardless cost a third of the NBD write throughput in e2e-nbd.)
            for (final PrimaryVolume p : primaries.values())
            {
                try
                {
                    if (p.metadata().activityLog().underPressure())
                    {
                        p.flushVolume();
                    }
                }
                catch (final DiskWriteException e)
                {
                    p.diskFault(e);
                    Log.error(config.node().name() + "/" + p.name(), "background flush failed: " + e.getMessage());
                }
                catch (final RuntimeException | InternalError e)
                {
                    Log.error(config.node().name() + "/" + p.name(), "background flush failed: " + e);
                }
            }
        }, STANDBY_FLUSH_INTERVAL_MS, STANDBY_FLUSH_INTERVAL_MS, TimeUnit.MILLISECONDS);
    }

    private void openVolume(final VolumeConfig vc) throws IOException
    {
        final String component = config.node().name() + "/" + vc.name();
        final Volume volume;
        // An image that is missing or shorter than the volume is (re)created here: whatever the metadata
        // says about its contents no longer holds.
        final boolean imageExisted = Files.exists(vc.path());
        final boolean imageWasThere = imageExisted && (vc.size() <= 0 || Files.size(vc.path()) >= vc.size()
            || !Files.isRegularFile(vc.path()));
        try
        {
            volume = vc.watched() ? Volume.openReadOnly(vc.path(), vc.size()) : Volume.open(vc.path(), vc.size());
        }
        catch (final IOException e)
        {
            throw new IOException("volume " + vc.name() + ": " + describe(e), e);
        }
        final MetadataFile metadata;
        try
        {
            metadata = MetadataFile.openOrCreate(vc.metadataPath(config.node().dataDir()), volume.size(),
                vc.blockSize(), volume::forceFile);
        }
        catch (final IOException | RuntimeException e)
        {
            volume.close();
            throw new IOException("volume " + vc.name() + ": " + describe(e), e);
        }
        final VolumeState state = new VolumeState(vc, volume.size());
        states.add(state);
        if (metadata.processCrashOnly())
        {
            Log.warn(component, "metadata " + metadata.path() + " was not closed cleanly"
                + " (the process died; the machine did not): the dirty map is exact, " + metadata.recoveredInFlight()
                + " block(s) that were in flight are dirty again");
        }
        else if (metadata.machineCrash())
        {
            Log.warn(component, "metadata " + metadata.path() + " was not closed cleanly"
                + " in an earlier boot (machine crash): " + (vc.role() == VolumeConfig.Role.PRIMARY
                    ? metadata.activityLog().recoveredExtents().length + " activity-log extent(s) will be compared with"
                        + " the peer" + (metadata.activityLog().damaged()
                            ? "; the activity log is damaged, so the whole volume will be compared" : "")
                    : "this copy may have lost writes it acknowledged; the primary will compare the whole volume"));
        }
        if (!imageWasThere && metadata.currentGen() != 0 && vc.role() == VolumeConfig.Role.PRIMARY)
        {
            // A primary serving a recreated, empty image would overwrite its standby with zeros: refuse.
            try (metadata)
            {
                volume.close();
                if (!imageExisted)
                {
                    Files.deleteIfExists(vc.path()); // only the empty file created a moment ago
                }
            }
            throw new IOException("volume " + vc.name() + ": image " + vc.path() + " is " + (imageExisted ? "shorter"
                + " than the volume" : "missing") + ", but metadata " + metadata.path() + " says it held data"
                + " (generation " + Long.toHexString(metadata.currentGen()) + "); refusing to serve it as primary. Restore"
                + " the image, or make this node standby (its copy is then rebuilt from the peer), or move the"
                + " metadata file away to start over");
        }
        if (!imageWasThere && metadata.currentGen() != 0)
        {
            Log.warn(component, "image " + vc.path() + " was missing or short and has been created; its metadata no"
                + " longer describes it: the primary will compare the whole volume");
            metadata.copyState(0, MetadataFile.Disk.UNKNOWN);
        }
        if (vc.role() == VolumeConfig.Role.STANDBY && metadata.role() == MetadataFile.ROLE_PRIMARY
            && (metadata.dirtyMap().dirtyBlocks() > 0 || !metadata.openedClean()))
        {
            // A former primary may hold writes its peer never got: only a whole compare can undo them.
            Log.warn(component, "this node was primary for " + vc.name() + " and holds "
                + metadata.dirtyMap().dirtyBlocks() + " block(s) its peer may not have"
                + (metadata.openedClean() ? "" : " (and it did not stop cleanly)")
                + "; as standby its copy will be compared in whole and those blocks replaced by the primary's");
            metadata.doubtCopy();
        }
        if (vc.twoWay())
        {
            openTwoWay(vc, volume, metadata, state, imageWasThere && imageExisted, component);
        }
        else if (vc.role() == VolumeConfig.Role.PRIMARY)
        {
            if (metadata.disk() != MetadataFile.Disk.CONSISTENT && metadata.currentGen() != 0)
            {
                Log.warn(component, "starting as primary with a copy that is " + metadata.disk().name().toLowerCase(
                    java.util.Locale.ROOT) + " (a sync into it did not finish): its data may be unusable");
            }
            final PrimaryVolume primary = newPrimary(vc, volume, metadata, state);
            primaries.put(vc.name(), primary);
            if (vc.watched())
            {
                watch(primary, component);
            }
        }
        else
        {
            metadata.role(MetadataFile.ROLE_STANDBY);
            final StandbyVolume standby = new StandbyVolume(vc, volume, metadata, state);
            if (!imageExisted && !volume.isBlockDevice())
            {
                standby.createdBlank();
            }
            standbys.put(vc.name(), standby);
        }
        Log.info(component, "opened " + vc.role().configName() + " volume "
            + vc.path() + " (" + Units.formatBytes(volume.size()) + ", block-size " + vc.blockSize()
            + ", compression " + vc.compression().configName() + (volume.isBlockDevice() ? ", block device" : "")
            + "), metadata " + metadata.path());
    }

    /**
     * A volume group: on a standby, opens the members it already holds (so they report and can be promoted
     * before their primary connects); on a primary, members are found once the group starts.
     */
    private void openGroup(final VolumeConfig vc) throws IOException
    {
        final String component = config.node().name() + "/" + vc.name();
        final io.doppel.watch.VolumeGroup group = new io.doppel.watch.VolumeGroup(vc, component, new GroupHost());
        if (vc.role() == VolumeConfig.Role.STANDBY)
        {
            final List<String> held;
            try
            {
                held = group.heldFiles();
            }
            catch (final IOException e)
            {
                throw new IOException("volume group " + vc.name() + ": " + describe(e), e);
            }
            for (final String file : held)
            {
                openVolume(vc.member(file, 0));
                group.memberOpened(file);
            }
        }
        groups.add(group);
        Log.info(component, "volume group " + vc.role().configName() + " on " + vc.path() + ": each "
            + (VolumeConfig.ALL_FILES.equals(vc.members()) ? "file" : "file matching " + vc.members()) + " in "
            + vc.groupDirectory() + " is a volume named " + vc.name() + ".FILE"
            + (vc.role() == VolumeConfig.Role.STANDBY ? " (created when " + vc.peer() + " replicates it; "
                + group.memberCount() + " held now)" : ""));
    }

    /** Registers a group's meters, and on a primary starts finding its members. */
    private void startGroup(final io.doppel.watch.VolumeGroup group)
    {
        metrics.addGroup(group.name(), group::memberCount, group::missingCount);
        if (group.config().role() == VolumeConfig.Role.PRIMARY)
        {
            group.start();
        }
    }

    /** Undoes {@link #openGroup} for a group whose reload failed. */
    private void closeAddedGroup(final String name)
    {
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            if (g.name().equals(name))
            {
                groups.remove(g);
                g.memberFiles().forEach(file -> closeAdded(g.config().memberName(file)));
            }
        }
    }

    /** A reload changed a group's live settings: its members take them too. */
    private void groupChanged(final VolumeConfig vc)
    {
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            if (g.name().equals(vc.name()))
            {
                g.config(vc);
            }
        }
        for (final VolumeState state : states)
        {
            final VolumeConfig now = state.config();
            if (vc.name().equals(now.group()))
            {
                state.config(vc.member(vc.memberFileName(now.name()), now.size()).withRole(now.role()));
            }
        }
    }

    /** Opens and starts a member volume a group found (primary); on failure leaves nothing behind. */
    private synchronized void addMember(final VolumeConfig member) throws IOException
    {
        if (closing)
        {
            throw new IOException("the daemon is shutting down");
        }
        if (primaries.containsKey(member.name()) || standbys.containsKey(member.name()))
        {
            throw new IOException("a volume named " + member.name() + " is open already");
        }
        try
        {
            openVolume(member);
        }
        catch (final IOException | RuntimeException e)
        {
            if (states.stream().anyMatch(v -> v.config().name().equals(member.name())))
            {
                closeAdded(member.name()); // opened this far before it was refused
            }
            throw e;
        }
        try
        {
            metrics.add(stateOf(member.name()));
            final PrimaryVolume p = primaries.get(member.name());
            if (p != null)
            {
                startSender(p);
                final io.doppel.watch.FileWatcher w = watchers.get(member.name());
                if (w != null)
                {
                    w.start();
                }
            }
        }
        catch (final RuntimeException e)
        {
            closeAdded(member.name());
            throw e;
        }
    }

    /**
     * A primary's link names a volume this standby does not have: when it is a member of one of its volume
     * groups (G.FILE for group G, from G's peer), create it, with the size the handshake carries, in the
     * group's directory. Null otherwise: the link is then refused as for any unknown volume.
     */
    private synchronized StandbyVolume standbyMember(final io.doppel.net.Hello hello)
    {
        final String name = hello.volume();
        if (closing || metrics == null || standbys.containsKey(name) || primaries.containsKey(name))
        {
            return standbys.get(name); // null while starting: the primary tries again
        }
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            final VolumeConfig gc = g.config();
            final String file = gc.memberFileName(name);
            if (gc.role() != VolumeConfig.Role.STANDBY || file == null)
            {
                continue;
            }
            final String component = config.node().name() + "/" + gc.name();
            if (!hello.node().equals(gc.peer()) || hello.role() != io.doppel.net.WireProtocol.ROLE_PRIMARY
                || hello.size() <= 0)
            {
                Log.error(component, "not creating member " + name + " for node \"" + hello.node() + "\" ("
                    + io.doppel.net.Hello.roleName(hello.role()) + ", " + hello.size() + " bytes): volume group "
                    + gc.name() + " takes members only from primary " + gc.peer());
                return null;
            }
            try
            {
                openVolume(gc.member(file, hello.size()));
                metrics.add(stateOf(name));
                g.memberOpened(file);
                Log.info(component, "new member volume " + name + ": created " + gc.groupDirectory().resolve(file)
                    + " (" + Units.formatBytes(hello.size()) + ") for primary " + hello.node());
                return standbys.get(name);
            }
            catch (final IOException | RuntimeException e)
            {
                if (states.stream().anyMatch(v -> v.config().name().equals(name)))
                {
                    closeAdded(name);
                }
                Log.error(component, "cannot create member volume " + name + " in " + gc.groupDirectory() + ": "
                    + e.getMessage());
                return null;
            }
        }
        return null;
    }

    /** What a volume group asks of this node. */
    private final class GroupHost implements io.doppel.watch.VolumeGroup.Host
    {
        @Override
        public void addMember(final VolumeConfig member) throws IOException
        {
            DoppelNode.this.addMember(member);
        }

        @Override
        public boolean knows(final String name)
        {
            return Files.exists(config.node().dataDir().resolve(name + ".meta"));
        }

        @Override
        public String configuredAt(final Path file)
        {
            for (final VolumeConfig v : config.volumes())
            {
                if (!v.isGroup() && v.path().toAbsolutePath().normalize().equals(file.toAbsolutePath().normalize()))
                {
                    return v.name();
                }
            }
            return null;
        }
    }

    /** Watch mode: the shipped hashes beside the metadata, the scanner, and the up-to-date gate. */
    private void watch(final PrimaryVolume primary, final String component) throws IOException
    {
        final VolumeConfig vc = primary.config();
        final io.doppel.watch.WatchHashes hashes;
        try
        {
            hashes = io.doppel.watch.WatchHashes.openOrCreate(vc.watchHashesPath(config.node().dataDir()),
                primary.size(), vc.blockSize(), component);
        }
        catch (final IOException e)
        {
            throw new IOException("volume " + vc.name() + ": " + e.getMessage(), e);
        }
        final io.doppel.replication.WatchStatus status = new io.doppel.replication.WatchStatus();
        primary.state().watch(status);
        final io.doppel.watch.FileWatcher watcher = new io.doppel.watch.FileWatcher(primary, hashes, status, component);
        primary.watch(hashes, watcher::settled);
        watchers.put(vc.name(), watcher);
        Log.info(component, "watching " + vc.path() + " (read-only; watch-rate " + Units.formatBytes(vc.watchRate())
            + "/s, watch-interval " + vc.watchIntervalMillis() + " ms), shipped hashes in " + hashes.path());
    }

    /**
     * An I/O error as an operator reads it: the JDK's file-system exceptions carry only the path as their
     * message ("/srv/images/vm1.img"), so say what happened to it.
     */
    static String describe(final Exception e)
    {
        if (e instanceof java.nio.file.FileSystemException && !(e instanceof java.nio.file.FileSystemLoopException))
        {
            final java.nio.file.FileSystemException f = (java.nio.file.FileSystemException)e;
            final String what = e instanceof java.nio.file.AccessDeniedException ? "permission denied"
                : e instanceof java.nio.file.NoSuchFileException ? "no such file or directory"
                : e instanceof java.nio.file.NotDirectoryException ? "not a directory"
                : e instanceof java.nio.file.FileAlreadyExistsException ? "already exists"
                : f.getReason() != null ? f.getReason() : e.getClass().getSimpleName();
            return f.getFile() + (f.getOtherFile() != null ? " -> " + f.getOtherFile() : "") + ": " + what
                + (e instanceof java.nio.file.AccessDeniedException ? " (the daemon runs as user "
                    + System.getProperty("user.name") + "; under systemd, is the path in ReadWritePaths=?)" : "");
        }
        return e.getMessage();
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

    /**
     * An operator verb from the admin endpoint. pause, resume, resync and verify act on a volume this node
     * is primary for; they return at once, and long work reports its progress in /status.
     */
    public Map<String, Object> runVerb(final String volume, final String verb, final Map<String, String> options)
        throws AdminServer.VerbException
    {
        final boolean known = primaries.containsKey(volume) || standbys.containsKey(volume) || twoWays.containsKey(volume);
        if (!known)
        {
            throw new AdminServer.VerbException(404, "no volume named \"" + volume + "\" on node " + config.node().name()
                + " (it has " + String.join(", ", allNames()) + ")");
        }
        if (verb.equals("conflicts"))
        {
            return conflicts(volume, options);
        }
        if (twoWays.containsKey(volume))
        {
            throw new AdminServer.VerbException(409, verb + ": volume " + volume + " is two-way (both nodes take writes);"
                + " pause, resume, resync, verify, promote and demote apply to one-way volumes only");
        }
        final Map<String, Object> result = new LinkedHashMap<>();
        result.put("volume", volume);
        result.put("verb", verb);
        switch (verb)
        {
            case "pause":
                primarySender(volume, verb).pause();
                result.put("message", "replication paused; writes are tracked in the dirty map until resume");
                break;
            case "resume":
                primarySender(volume, verb).resume();
                result.put("message", "replication resumed; the standby resyncs from the dirty map");
                break;
            case "resync":
                primarySender(volume, verb).requestFullResync();
                result.put("message", "full resync requested: the link is dropped and the whole volume compared by hash");
                break;
            case "verify":
                final boolean repair = Boolean.parseBoolean(options.getOrDefault("repair", "false"));
                if (!primarySender(volume, verb).requestVerify(repair))
                {
                    throw new AdminServer.VerbException(409, "a verify of volume " + volume + " is already running; see"
                        + " verify in /status");
                }
                result.put("message", "online verify requested" + (repair ? " with repair" : "")
                    + "; it runs while the volume streams, progress in /status");
                break;
            case "promote":
                result.put("message", promote(volume, Boolean.parseBoolean(options.getOrDefault("force", "false"))));
                break;
            case "demote":
                result.put("message", demote(volume));
                break;
            default:
                throw new AdminServer.VerbException(400, "unknown verb \"" + verb + "\": expected pause, resume, resync,"
                    + " verify, promote or demote");
        }
        return result;
    }

    /**
     * The conflicts logged for a two-way volume, newest first: where, which node's write won and which lost,
     * both vectors and stamps. The losers' bytes stay in the log file ({@code doppel conflicts} names it).
     */
    private Map<String, Object> conflicts(final String volume, final Map<String, String> options)
        throws AdminServer.VerbException
    {
        final io.doppel.twoway.TwoWayVolume tw = twoWays.get(volume);
        if (tw == null)
        {
            throw new AdminServer.VerbException(409, "conflicts: volume " + volume + " is not two-way (mode = \"one-way\""
                + " has no conflicts: only the primary takes writes)");
        }
        final int limit;
        try
        {
            limit = Integer.parseInt(options.getOrDefault("limit", "1000"));
        }
        catch (final NumberFormatException e)
        {
            throw new AdminServer.VerbException(400, "limit=" + options.get("limit") + ": expected a whole number");
        }
        final List<io.doppel.twoway.ConflictLog.Conflict> all;
        final Path log = tw.config().conflictsPath(config.node().dataDir());
        try
        {
            all = io.doppel.twoway.ConflictLog.read(log, CONFLICT_LOG_FILES);
        }
        catch (final IOException e)
        {
            throw new AdminServer.VerbException(500, "cannot read conflict log " + log + ": " + e.getMessage());
        }
        final List<String> nodes = tw.versions().nodes();
        final List<Map<String, Object>> list = new ArrayList<>();
        for (int i = all.size() - 1; i >= 0 && list.size() < limit; i--)
        {
            final io.doppel.twoway.ConflictLog.Conflict c = all.get(i);
            final Map<String, Object> m = new LinkedHashMap<>();
            m.put("offset", c.offset());
            m.put("length", c.length());
            m.put("winner", version(nodes, c.winnerStamp(), c.winnerVector()));
            m.put("loser", version(nodes, c.loserStamp(), c.loserVector()));
            list.add(m);
        }
        final Map<String, Object> result = new LinkedHashMap<>();
        result.put("volume", volume);
        result.put("node", config.node().name());
        result.put("count", tw.status().conflicts());
        result.put("wonHere", tw.status().conflictsWonHere.get());
        result.put("wonByPeer", tw.status().conflictsWonByPeer.get());
        result.put("logged", all.size());
        result.put("log", log.toString());
        result.put("conflicts", list);
        return result;
    }

    private static Map<String, Object> version(final List<String> nodes, final long stamp, final int[] vector)
    {
        final Map<String, Object> m = new LinkedHashMap<>();
        final int slot = io.doppel.twoway.HybridClock.slot(stamp);
        m.put("node", slot < nodes.size() ? nodes.get(slot) : "slot " + slot);
        m.put("stamp", io.doppel.twoway.HybridClock.format(stamp));
        final Map<String, Object> v = new LinkedHashMap<>();
        for (int i = 0; i < vector.length && i < nodes.size(); i++)
        {
            v.put(nodes.get(i), Integer.toUnsignedLong(vector[i]));
        }
        m.put("vector", v);
        return m;
    }

    /** The two-way volume of that name on this node, or null. */
    public io.doppel.twoway.TwoWayVolume twoWay(final String name)
    {
        return twoWays.get(name);
    }

    /**
     * Reads the config file again and applies what can change live (see {@link ConfigChanges}); refuses the
     * whole reload, keeping the running config, when the file does not load or a change cannot apply live.
     * Called on SIGHUP and by {@code POST /reload}.
     */
    public ReloadResult reloadFromFile()
    {
        reloadListener.reloading();
        ReloadResult result;
        if (configFile == null)
        {
            result = ReloadResult.refused(List.of("this node was not started from a config file; nothing to reload"));
        }
        else
        {
            try
            {
                result = reload(ConfigLoader.load(configFile));
            }
            catch (final ConfigException e)
            {
                result = ReloadResult.refused(List.of(e.getMessage()));
            }
        }
        final String component = config.node().name() + "/node";
        final String from = configFile == null ? "" : " of " + configFile;
        if (result.accepted())
        {
            Log.info(component, "reload" + from + ": " + (result.changes().isEmpty() ? "no changes"
                : String.join("; ", result.changes())));
        }
        else
        {
            for (final String why : result.refused())
            {
                Log.error(component, "reload" + from + " refused, still running on the old config: " + why);
            }
        }
        reloadListener.reloaded(result);
        return result;
    }

    /** Applies {@code next} live, all or nothing (see {@link #reloadFromFile()}). */
    public synchronized ReloadResult reload(final DoppelConfig next)
    {
        if (closing)
        {
            return ReloadResult.refused(List.of("the daemon is shutting down"));
        }
        final Map<String, VolumeConfig> live = new LinkedHashMap<>();
        for (final VolumeState v : states)
        {
            if (v.config().group() == null) // members are the groups' to add; the file names the group
            {
                live.put(v.config().name(), v.config());
            }
        }
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            live.put(g.name(), g.config());
        }
        final ConfigChanges changes = ConfigChanges.between(config, live, next);
        if (!changes.accepted())
        {
            return ReloadResult.refused(changes.refused);
        }
        final DoppelConfig previous = config;
        config = next; // new volumes resolve their peers in it
        final List<VolumeConfig> opened = new ArrayList<>();
        try
        {
            for (final VolumeConfig vc : changes.added)
            {
                if (vc.isGroup())
                {
                    openGroup(vc);
                    opened.add(vc);
                    continue;
                }
                openVolume(vc);
                opened.add(vc);
                if (vc.hasNbd())
                {
                    exportAdded(vc);
                }
            }
        }
        catch (final IOException | RuntimeException e)
        {
            for (final VolumeConfig vc : opened)
            {
                if (vc.isGroup())
                {
                    closeAddedGroup(vc.name());
                }
                else
                {
                    closeAdded(vc.name());
                }
            }
            config = previous;
            return ReloadResult.refused(List.of("cannot open the new volume(s): " + e.getMessage()));
        }
        if (changes.logLevel != null)
        {
            Log.setLevel(changes.logLevel);
        }
        for (final VolumeConfig vc : changes.changed)
        {
            if (vc.isGroup())
            {
                groupChanged(vc);
                continue;
            }
            final VolumeState state = stateOf(vc.name());
            state.config(vc); // the ack level, compression and split-brain policy are read from here
        }
        for (final VolumeConfig vc : changes.added)
        {
            if (vc.isGroup())
            {
                groups.stream().filter(g -> g.name().equals(vc.name())).findFirst().ifPresent(this::startGroup);
                continue;
            }
            final VolumeState state = stateOf(vc.name());
            metrics.add(state);
            if (twoWays.containsKey(vc.name()))
            {
                startTwoWay(twoWays.get(vc.name()));
            }
            final PrimaryVolume p = primaries.get(vc.name());
            if (p != null)
            {
                startSender(p);
                final io.doppel.watch.FileWatcher w = watchers.get(vc.name());
                if (w != null)
                {
                    w.start();
                }
            }
        }
        return ReloadResult.accepted(changes.applied);
    }

    private VolumeState stateOf(final String name)
    {
        return states.stream().filter(v -> v.config().name().equals(name)).findFirst().orElseThrow();
    }

    /** Serves a volume added by a reload: on the NBD server of its address, or a new one. */
    private void exportAdded(final VolumeConfig vc) throws IOException
    {
        for (final NbdServer server : nbdServers)
        {
            if (server.address().equals(vc.nbd()))
            {
                server.addExport(export(vc.name()));
                return;
            }
        }
        bindNbd(vc.nbd(), Map.of(vc.name(), export(vc.name())));
    }

    /** Undoes {@link #openVolume} for a volume whose reload failed. */
    private void closeAdded(final String name)
    {
        states.removeIf(v -> v.config().name().equals(name));
        nbdServers.forEach(server -> server.removeExport(name));
        watchers.remove(name);
        final AutoCloseable v = twoWays.containsKey(name) ? twoWays.remove(name)
            : primaries.containsKey(name) ? primaries.remove(name) : standbys.remove(name);
        try
        {
            if (v != null)
            {
                v.close();
            }
        }
        catch (final Exception e)
        {
            Log.error(config.node().name() + "/" + name, "closing after a failed reload: " + e.getMessage());
        }
    }

    /** Who hears about reloads (systemd's notifier). */
    void reloadListener(final ReloadListener listener)
    {
        this.reloadListener = listener;
    }

    /** Told before and after a reload. */
    interface ReloadListener
    {
        ReloadListener NONE = new ReloadListener()
        {
            @Override
            public void reloading()
            {
            }

            @Override
            public void reloaded(final ReloadResult result)
            {
            }
        };

        void reloading();

        void reloaded(ReloadResult result);
    }

    private ReplicationSender primarySender(final String volume, final String verb) throws AdminServer.VerbException
    {
        final ReplicationSender sender = senders.get(volume);
        if (sender == null)
        {
            throw new AdminServer.VerbException(409, verb + ": volume " + volume + " is standby on node "
                + config.node().name() + "; run " + verb + " on its primary");
        }
        return sender;
    }

    private List<String> allNames()
    {
        final List<String> names = new ArrayList<>(primaries.keySet());
        names.addAll(standbys.keySet());
        names.addAll(twoWays.keySet());
        return names;
    }

    /** Every volume's state, in config order. */
    public List<VolumeState> volumeStates()
    {
        return java.util.Collections.unmodifiableList(states);
    }

    /** The /status document. */
    public Map<String, Object> status()
    {
        return StatusReport.of(config.node().name(), states,
            groups.stream().map(io.doppel.watch.VolumeGroup::toMap).collect(Collectors.toList()));
    }

    public AdminServer admin()
    {
        return admin;
    }

    @Override
    public void close()
    {
        synchronized (this)
        {
            closing = true; // no promote or demote starts from here on; one in progress has finished
        }
        if (admin != null)
        {
            admin.close();
        }
        for (final io.doppel.watch.VolumeGroup g : groups)
        {
            try
            {
                g.close(); // before the watchers: it may be adding a member
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
        for (final io.doppel.watch.FileWatcher w : watchers.values())
        {
            try
            {
                w.close();
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
        for (final io.doppel.replication.TwoWayLink l : twoWayLinks.values())
        {
            try
            {
                l.close();
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
        for (final ReplicationSender s : senders.values())
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
        all.addAll(twoWays.values());
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
        public io.doppel.replication.TwoWayLink twoWay(final String name)
        {
            return twoWayLinks.get(name);
        }

        @Override
        public StandbyVolume standbyFor(final io.doppel.net.Hello hello)
        {
            final StandbyVolume s = standbys.get(hello.volume());
            // Only a node with volume groups takes the node's lock for an unknown name (a demote holds it).
            return s != null || groups.isEmpty() ? s : standbyMember(hello);
        }

        @Override
        public boolean isPrimaryHere(final String name)
        {
            return primaries.containsKey(name);
        }

        @Override
        public String describe()
        {
            if (primaries.isEmpty() && standbys.isEmpty() && twoWays.isEmpty() && groups.isEmpty())
            {
                return "it has no volumes";
            }
            return "it has " + java.util.stream.Stream.concat(
                states.stream().map(v -> v.config().name() + " as " + v.config().role().configName()),
                groups.stream().map(g -> "volume group " + g.name() + " as " + g.config().role().configName()
                    + " (members named " + g.name() + ".FILE, from peer " + g.config().peer() + ")"))
                .collect(Collectors.joining(", "));
        }
    }
}
