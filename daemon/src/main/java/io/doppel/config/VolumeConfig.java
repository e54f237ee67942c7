package io.doppel.config;

import io.doppel.pipeline.Compression;

import java.nio.file.Path;

/** A {@code [[volume]]} entry: one replicated image or block device and its role on this node. */
public record VolumeConfig(String name, Path path, long size, Role role, String peer, int blockSize,
    Compression compression, long logBytes, String nbd, Ack ack, AfterSplitBrain afterSplitBrain, Source source,
    long watchRate, long watchIntervalMillis)
{
    public VolumeConfig(final String name, final Path path, final long size, final Role role, final String peer,
        final int blockSize, final Compression compression, final long logBytes, final String nbd, final Ack ack,
        final AfterSplitBrain afterSplitBrain)
    {
        this(name, path, size, role, peer, blockSize, compression, logBytes, nbd, ack, afterSplitBrain, Source.WRITES,
            Units.parseSize(DEFAULT_WATCH_RATE), Units.parseDurationMillis(DEFAULT_WATCH_INTERVAL));
    }

    public VolumeConfig(final String name, final Path path, final long size, final Role role, final String peer,
        final int blockSize, final Compression compression, final long logBytes, final String nbd, final Ack ack)
    {
        this(name, path, size, role, peer, blockSize, compression, logBytes, nbd, ack, AfterSplitBrain.DISCONNECT);
    }

    public static final String DEFAULT_AFTER_SPLIT_BRAIN = "disconnect";

    /**
     * What the primary does when both sides took writes since they last agreed: {@code disconnect} (refuse,
     * wait for the operator), or pick the side whose changes are discarded — the one that started
     * writing alone later, or the one with fewer changed blocks. In one-way mode only the standby's
     * changes can be discarded; when the policy picks the primary, the link is refused as with disconnect.
     */
    public enum AfterSplitBrain
    {
        DISCONNECT, DISCARD_YOUNGER_PRIMARY, DISCARD_LEAST_CHANGES;

        public String configName()
        {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }
    /**
     * Where a primary's changes come from: {@code writes} (the default: every write goes through doppel —
     * NBD or the Java API — and is logged in order), or {@code watch} (another program writes the image
     * file; doppel maps it read-only, finds changed blocks by scanning, and ships them).
     */
    public enum Source
    {
        WRITES, WATCH;

        public String configName()
        {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public static final String DEFAULT_SOURCE = "writes";
    public static final String DEFAULT_WATCH_RATE = "200MiB";
    public static final String DEFAULT_WATCH_INTERVAL = "10s";
    /** Slowest scan rate accepted: below it a large image would never finish a scan. */
    public static final long MIN_WATCH_RATE = 1 << 20;

    /** True when this node's copy is an image file another program writes (primary with source = watch). */
    public boolean watched()
    {
        return source == Source.WATCH && role == Role.PRIMARY;
    }

    public static final String DEFAULT_BLOCK_SIZE = "4KiB";
    public static final int MIN_BLOCK_SIZE = 4096;
    public static final int MAX_BLOCK_SIZE = 1 << 20;
    public static final String DEFAULT_COMPRESSION = "lz4";
    public static final String DEFAULT_LOG_SIZE = "64MiB";

    /** Whether this volume is served over NBD ({@code nbd} key present). */
    public boolean hasNbd()
    {
        return nbd != null;
    }

    /**
     * When a write through NBD is acknowledged (DRBD's protocols A, B, C): {@code async} once it is in
     * the local image; {@code received} once the standby holds it too; {@code sync} as received, and
     * FLUSH and FUA only once both sides have it on stable storage.
     */
    public enum Ack
    {
        ASYNC, RECEIVED, SYNC;

        public String configName()
        {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public static final String DEFAULT_ACK = "sync";

    /**
     * The volume's role on this node. {@code TWO_WAY} is {@code mode = "two-way"}: both nodes take writes and
     * stream them to each other (no primary, no standby; see {@code docs/two-way.md}).
     */
    public enum Role
    {
        PRIMARY, STANDBY, TWO_WAY;

        public String configName()
        {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    public static final String DEFAULT_MODE = "one-way";

    /** Two-way mode: both nodes take writes. */
    public boolean twoWay()
    {
        return role == Role.TWO_WAY;
    }

    /** Where a two-way volume keeps its per-block version vectors. */
    public Path versionsPath(final Path dataDir)
    {
        return dataDir.resolve(name + ".versions");
    }

    /** Where a two-way volume logs the losing versions of conflicting writes. */
    public Path conflictsPath(final Path dataDir)
    {
        return dataDir.resolve(name + ".conflicts");
    }

    /** This volume with another role (promote, demote). */
    public VolumeConfig withRole(final Role newRole)
    {
        return new VolumeConfig(name, path, size, newRole, peer, blockSize, compression, logBytes, nbd, ack,
            afterSplitBrain, source, watchRate, watchIntervalMillis);
    }

    /** Where a watched volume keeps the hashes of the blocks it last shipped. */
    public Path watchHashesPath(final Path dataDir)
    {
        return dataDir.resolve(name + ".watch");
    }

    /** Where this volume's metadata (identity, dirty bitmap) lives. */
    public Path metadataPath(final Path dataDir)
    {
        return dataDir.resolve(name + ".meta");
    }
}
