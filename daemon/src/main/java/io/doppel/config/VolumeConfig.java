package io.doppel.config;

import io.doppel.pipeline.Compression;

import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.PathMatcher;

/**
 * A {@code [[volume]]} entry: one replicated image or block device and its role on this node.
 *
 * <p>A <b>volume group</b> ({@code members} set) is an entry whose {@code path} names a directory or a glob:
 * each image file in it is a volume of its own, a <b>member</b>, named {@code <group>.<file name>} (the
 * separator is a dot because volume names travel in the admin endpoint's URL paths and name files in the
 * data directory, where a slash would not fit). A member's config is the group's with its own name and
 * path, and {@code group} naming the group it came from.
 */
public record VolumeConfig(String name, Path path, long size, Role role, String peer, int blockSize,
    Compression compression, long logBytes, String nbd, Ack ack, AfterSplitBrain afterSplitBrain, Source source,
    long watchRate, long watchIntervalMillis, String members, String group)
{
    public VolumeConfig(final String name, final Path path, final long size, final Role role, final String peer,
        final int blockSize, final Compression compression, final long logBytes, final String nbd, final Ack ack,
        final AfterSplitBrain afterSplitBrain, final Source source, final long watchRate,
        final long watchIntervalMillis)
    {
        this(name, path, size, role, peer, blockSize, compression, logBytes, nbd, ack, afterSplitBrain, source,
            watchRate, watchIntervalMillis, null, null);
    }

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
            afterSplitBrain, source, watchRate, watchIntervalMillis, members, group);
    }

    /** The file-name pattern of a directory group: every file (hidden ones are never members). */
    public static final String ALL_FILES = "*";
    /**
     * Longest member volume name: it names {@code <data-dir>/<name>.meta} and {@code .watch} files (255 bytes
     * on Linux file systems) and travels in the handshake (at most 255 bytes), with room to spare.
     */
    public static final int MAX_MEMBER_NAME = 200;
    /** What a file name must look like to become a member: the characters a volume name may hold. */
    public static final String MEMBER_FILE_NAME = "[A-Za-z0-9][A-Za-z0-9._-]*";

    /** True for a volume group: {@code path} names a directory or a glob, each matching file a member volume. */
    public boolean isGroup()
    {
        return members != null;
    }

    /** The directory a group's members live in: {@code path} itself, or the directory of its glob. */
    public Path groupDirectory()
    {
        return path.getFileName() != null && path.getFileName().toString().equals(members) ? path.getParent() : path;
    }

    /** Matches the file names (not paths) a group takes as members. */
    public PathMatcher memberMatcher()
    {
        return FileSystems.getDefault().getPathMatcher("glob:" + members);
    }

    /**
     * Why a file in this group's directory cannot be a member by its name, or null when it can (the pattern
     * is checked apart: a file that does not match is simply not part of the group).
     */
    public String memberNameProblem(final String fileName)
    {
        if (!fileName.matches(MEMBER_FILE_NAME))
        {
            return "file name \"" + fileName + "\" is not usable in a volume name: expected letters, digits, '.', '_'"
                + " or '-', starting with a letter or digit (hidden files are never members)";
        }
        if (memberName(fileName).length() > MAX_MEMBER_NAME)
        {
            return "volume name " + memberName(fileName) + " would be " + memberName(fileName).length()
                + " characters; at most " + MAX_MEMBER_NAME;
        }
        return null;
    }

    /** The volume name of this group's member for {@code fileName}. */
    public String memberName(final String fileName)
    {
        return name + "." + fileName;
    }

    /** The file name of this group's member volume {@code volumeName}, or null when it is not one of its names. */
    public String memberFileName(final String volumeName)
    {
        if (!volumeName.startsWith(name + "."))
        {
            return null;
        }
        final String file = volumeName.substring(name.length() + 1);
        return memberNameProblem(file) == null ? file : null;
    }

    /** The config of this group's member volume for {@code fileName}, {@code size} bytes (0: the file's size). */
    public VolumeConfig member(final String fileName, final long memberSize)
    {
        return new VolumeConfig(memberName(fileName), groupDirectory().resolve(fileName), memberSize, role, peer,
            blockSize, compression, logBytes, null, ack, afterSplitBrain, source, watchRate, watchIntervalMillis,
            null, name);
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
