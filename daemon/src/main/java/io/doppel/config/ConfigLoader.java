package io.doppel.config;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.doppel.pipeline.Compression;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Function;

/**
 * Reads and validates the TOML config. Every key is known here with its default; an unknown key or a
 * bad value fails the whole load with a message that names the key, the value and what is accepted,
 * so a typo never silently falls back to a default. The sample with every key is
 * {@code systemd/doppel.toml}.
 */
public final class ConfigLoader
{
    public static final String DEFAULT_PATH = "/etc/doppel/doppel.toml";

    private static final List<String> TOP_KEYS = List.of("node", "peer", "volume", "limits");
    private static final List<String> LIMIT_KEYS = List.of("nbd-clients", "peer-links", "connection-rate", "nbd-request",
        "peer-in-flight");
    private static final List<String> NODE_KEYS = List.of("name", "listen", "admin", "data-dir", "heartbeat-interval",
        "heartbeat-timeout", "log-level", "tls-cert", "tls-key", "tls-ca", "nbd-tls", "admin-token-file");
    private static final List<String> PEER_KEYS = List.of("name", "address", "psk-file", "tls-fingerprint", "insecure");
    private static final List<String> VOLUME_KEYS = List.of("name", "path", "size", "role", "peer", "block-size",
        "compression", "replication-log-size", "nbd", "ack", "after-split-brain", "source", "watch-rate", "watch-interval", "mode");
    private static final List<String> LOG_LEVELS = List.of("error", "warn", "info", "debug");

    private final String source;

    private ConfigLoader(final String source)
    {
        this.source = source;
    }

    public static DoppelConfig load(final Path file) throws ConfigException
    {
        final String text;
        try
        {
            text = Files.readString(file);
        }
        catch (final IOException e)
        {
            throw new ConfigException(file + ": cannot read config: " + e);
        }
        return parse(text, file.toString());
    }

    public static DoppelConfig parse(final String toml, final String source) throws ConfigException
    {
        final JsonNode root;
        try
        {
            root = new TomlMapper().readTree(toml);
        }
        catch (final JacksonException e)
        {
            throw new ConfigException(source + ": not valid TOML: " + e.getOriginalMessage());
        }
        return new ConfigLoader(source).read(root);
    }

    private DoppelConfig read(final JsonNode root) throws ConfigException
    {
        checkKeys(root, "", TOP_KEYS);
        final JsonNode nodeTable = root.get("node");
        if (nodeTable == null || !nodeTable.isObject())
        {
            throw fail("[node]: missing table; it needs at least name = \"...\"");
        }
        final NodeConfig node = readNode(nodeTable);
        final List<PeerConfig> peers = new ArrayList<>();
        final Set<String> peerNames = new HashSet<>();
        for (final JsonNode p : arrayOfTables(root, "peer"))
        {
            checkKeys(p, "[[peer]].", PEER_KEYS);
            final String name = name(p, "[[peer]].name");
            if (!peerNames.add(name))
            {
                throw fail("[[peer]].name=\"" + name + "\": defined twice");
            }
            if (name.equals(node.name()))
            {
                throw fail("[[peer]].name=\"" + name + "\": is this node's own name");
            }
            final String where = "[[peer " + name + "]].";
            final InetSocketAddress address = address(required(p, "address", where + "address"), where + "address");
            final PresharedKey psk = p.has("psk-file") ? psk(Path.of(text(p.get("psk-file"), where + "psk-file")),
                where + "psk-file") : null;
            final String fingerprint = p.has("tls-fingerprint")
                ? fingerprint(text(p.get("tls-fingerprint"), where + "tls-fingerprint"), where + "tls-fingerprint")
                : null;
            final boolean insecure = bool(p, "insecure", false, where);
            peers.add(new PeerConfig(name, address, psk, fingerprint, insecure));
        }
        checkLinkSecurity(node, peers);
        final List<VolumeConfig> volumes = new ArrayList<>();
        final Set<String> volumeNames = new HashSet<>();
        for (final JsonNode v : arrayOfTables(root, "volume"))
        {
            checkKeys(v, "[[volume]].", VOLUME_KEYS);
            final VolumeConfig volume = readVolume(v, peerNames);
            if (!volumeNames.add(volume.name()))
            {
                throw fail("[[volume]].name=\"" + volume.name() + "\": defined twice");
            }
            volumes.add(volume);
        }
        checkGroupNames(volumes);
        return new DoppelConfig(withNbdTls(node, volumes), List.copyOf(peers), List.copyOf(volumes),
            readLimits(root.get("limits")));
    }

    /**
     * nbd-tls defaults to off, but an NBD address off loopback must say what it wants: clients there are
     * other hosts, and disks in plaintext on a network is a choice to make knowingly.
     */
    private NodeConfig withNbdTls(final NodeConfig node, final List<VolumeConfig> volumes) throws ConfigException
    {
        if (node.nbdTls() != null)
        {
            return node;
        }
        for (final VolumeConfig v : volumes)
        {
            if (v.nbd() != null && !v.nbd().startsWith("unix:") && !io.doppel.nbd.NbdServer.NbdAddress.isLoopback(v.nbd()))
            {
                throw fail("[[volume " + v.name() + "]].nbd=\"" + v.nbd() + "\" is off loopback: set [node].nbd-tls"
                    + " = \"require\" (with tls-cert, tls-key and tls-ca) so clients must use TLS, or nbd-tls = \"off\""
                    + " to serve it in plaintext knowingly");
            }
        }
        return new NodeConfig(node.name(), node.listen(), node.admin(), node.dataDir(), node.heartbeatIntervalMillis(),
            node.heartbeatTimeoutMillis(), node.logLevel(), node.tls(), NbdTlsMode.OFF, node.adminTokenFile());
    }

    private NodeConfig readNode(final JsonNode n) throws ConfigException
    {
        checkKeys(n, "[node].", NODE_KEYS);
        final String name = name(n, "[node].name");
        final long interval = duration(n, "heartbeat-interval", NodeConfig.DEFAULT_HEARTBEAT_INTERVAL, "[node].");
        final long timeout = duration(n, "heartbeat-timeout", NodeConfig.DEFAULT_HEARTBEAT_TIMEOUT, "[node].");
        if (interval < 100 || timeout / 2 < interval) // not 2 * interval: that overflows for huge values
        {
            throw fail("[node].heartbeat-timeout=" + timeout + "ms with heartbeat-interval=" + interval
                + "ms: expected an interval of at least 100ms and a timeout of at least twice the interval");
        }
        final String level = string(n, "log-level", NodeConfig.DEFAULT_LOG_LEVEL, "[node].");
        if (!LOG_LEVELS.contains(level))
        {
            throw fail("[node].log-level=\"" + level + "\": expected one of " + String.join(" | ", LOG_LEVELS));
        }
        final TlsConfig tls = readTls(n);
        final NbdTlsMode nbdTls = n.has("nbd-tls") ? nbdTlsMode(n.get("nbd-tls")) : null;
        if (nbdTls != null && nbdTls != NbdTlsMode.OFF && (!tls.configured() || tls.ca() == null))
        {
            throw fail("[node].nbd-tls=\"" + nbdTls.configName() + "\": needs tls-cert, tls-key and tls-ca in [node]"
                + " (the server's certificate and key, and the CA that signs NBD clients' certificates)");
        }
        final Path dataDir = path(string(n, "data-dir", NodeConfig.DEFAULT_DATA_DIR, "[node]."), "[node].data-dir");
        final String tokenFile = string(n, "admin-token-file", null, "[node].");
        if (tokenFile != null && (tokenFile.isBlank() || tokenFile.endsWith("/")))
        {
            throw fail("[node].admin-token-file=\"" + tokenFile + "\": expected the path of a file (default: <data-dir>/"
                + NodeConfig.DEFAULT_ADMIN_TOKEN_FILE_NAME + ")");
        }
        return new NodeConfig(name,
            address(string(n, "listen", NodeConfig.DEFAULT_LISTEN, "[node]."), "[node].listen"),
            address(string(n, "admin", NodeConfig.DEFAULT_ADMIN, "[node]."), "[node].admin"),
            dataDir, interval, timeout, level, tls, nbdTls,
            tokenFile == null ? dataDir.resolve(NodeConfig.DEFAULT_ADMIN_TOKEN_FILE_NAME) : path(tokenFile, "[node].admin-token-file"));
    }

    /** tls-cert and tls-key together (PEM files that exist; the key not readable by others), tls-ca optional. */
    private TlsConfig readTls(final JsonNode n) throws ConfigException
    {
        final Path cert = pemFile(n, "tls-cert");
        final Path key = pemFile(n, "tls-key");
        final Path ca = pemFile(n, "tls-ca");
        if ((cert == null) != (key == null))
        {
            throw fail("[node]." + (cert == null ? "tls-key" : "tls-cert") + " is set without [node]."
                + (cert == null ? "tls-cert" : "tls-key") + ": a certificate and its private key go together");
        }
        if (cert == null && ca != null)
        {
            throw fail("[node].tls-ca is set without tls-cert and tls-key: this node needs its own certificate too");
        }
        if (key != null)
        {
            try
            {
                final Set<java.nio.file.attribute.PosixFilePermission> perms = Files.getPosixFilePermissions(key);
                if (perms.contains(java.nio.file.attribute.PosixFilePermission.OTHERS_READ))
                {
                    throw fail("[node].tls-key=\"" + key + "\": the private key is readable by every user (mode "
                        + java.nio.file.attribute.PosixFilePermissions.toString(perms) + "); chmod 600 it (or 640 with"
                        + " the daemon's group)");
                }
            }
            catch (final UnsupportedOperationException | IOException e)
            {
                // not a POSIX file system: nothing to check
            }
        }
        if (cert == null)
        {
            return TlsConfig.NONE;
        }
        final TlsConfig tls = new TlsConfig(cert, key, ca);
        try
        {
            // parsed once here, so a wrong file is a config error (exit 2) naming the key, not a failed start
            io.doppel.net.TlsMaterial.load(tls);
        }
        catch (final IOException e)
        {
            throw fail(e.getMessage());
        }
        return tls;
    }

    private Path pemFile(final JsonNode n, final String key) throws ConfigException
    {
        if (!n.has(key))
        {
            return null;
        }
        final Path path = path(text(n.get(key), "[node]." + key), "[node]." + key);
        if (!Files.isRegularFile(path) || !Files.isReadable(path))
        {
            throw fail("[node]." + key + "=\"" + path + "\": " + (Files.exists(path) ? "not a readable file"
                : "no such file") + " (expected a PEM file)");
        }
        return path;
    }

    private NbdTlsMode nbdTlsMode(final JsonNode value) throws ConfigException
    {
        final String text = text(value, "[node].nbd-tls");
        for (final NbdTlsMode m : NbdTlsMode.values())
        {
            if (m.configName().equalsIgnoreCase(text))
            {
                return m;
            }
        }
        throw fail("[node].nbd-tls=\"" + text + "\": expected off | on | require");
    }

    /**
     * Traffic that leaves the host must be authenticated: a peer off loopback, or a listen address off
     * loopback, needs TLS ({@code [node].tls-*}) or a {@code psk-file}, or the operator's explicit
     * {@code insecure = true}.
     */
    private void checkLinkSecurity(final NodeConfig node, final List<PeerConfig> peers) throws ConfigException
    {
        for (final PeerConfig p : peers)
        {
            if (node.tls().configured() && node.tls().ca() == null && p.tlsFingerprint() == null)
            {
                throw fail("[[peer " + p.name() + "]].tls-fingerprint: missing; without [node].tls-ca each peer's"
                    + " certificate must be pinned (tls-fingerprint = \"sha-256 hex\"), or set [node].tls-ca");
            }
            if (p.tlsFingerprint() != null && !node.tls().configured())
            {
                throw fail("[[peer " + p.name() + "]].tls-fingerprint: set, but TLS is off; set [node].tls-cert and"
                    + " tls-key too");
            }
            if (!node.tls().configured() && p.psk() == null && !p.insecure() && !HostPort.isLoopback(p.address()))
            {
                throw fail("[[peer " + p.name() + "]].address=\"" + p.address().getHostString() + ":"
                    + p.address().getPort() + "\": off loopback with neither TLS nor a pre-shared key; set"
                    + " [node].tls-cert/tls-key/tls-ca or [[peer]].psk-file, or insecure = true to send plaintext"
                    + " on purpose");
            }
        }
        if (!node.tls().configured() && !HostPort.isLoopback(node.listen()))
        {
            for (final PeerConfig p : peers)
            {
                if (p.psk() == null && !p.insecure())
                {
                    throw fail("[node].listen=\"" + node.listen().getHostString() + ":" + node.listen().getPort()
                        + "\": off loopback with neither TLS nor a pre-shared key for peer " + p.name() + "; set"
                        + " [node].tls-cert/tls-key/tls-ca or [[peer " + p.name() + "]].psk-file, or insecure = true"
                        + " on that peer to accept plaintext on purpose");
                }
            }
        }
    }

    /** Reads a key file that only its owner may read; its trimmed text is the key. */
    private PresharedKey psk(final Path file, final String where) throws ConfigException
    {
        try
        {
            final java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = Files.getPosixFilePermissions(file);
            for (final java.nio.file.attribute.PosixFilePermission bad : List.of(
                java.nio.file.attribute.PosixFilePermission.GROUP_READ,
                java.nio.file.attribute.PosixFilePermission.GROUP_WRITE,
                java.nio.file.attribute.PosixFilePermission.OTHERS_READ,
                java.nio.file.attribute.PosixFilePermission.OTHERS_WRITE))
            {
                if (perms.contains(bad))
                {
                    throw fail(where + "=\"" + file + "\": readable or writable by group or others (mode "
                        + java.nio.file.attribute.PosixFilePermissions.toString(perms) + "); the key must be private:"
                        + " chmod 600 " + file);
                }
            }
            final byte[] key = PresharedKey.trimmed(Files.readAllBytes(file));
            if (key.length < PresharedKey.MIN_BYTES)
            {
                throw fail(where + "=\"" + file + "\": the key is " + key.length + " bytes; expected at least "
                    + PresharedKey.MIN_BYTES + " (make one with: openssl rand -hex 32 > " + file + ")");
            }
            return new PresharedKey(file, key);
        }
        catch (final IOException e)
        {
            throw fail(where + "=\"" + file + "\": cannot read the key file: " + e);
        }
    }

    /** A SHA-256 fingerprint as 64 hex digits, with or without colons; kept as lowercase hex. */
    private String fingerprint(final String text, final String where) throws ConfigException
    {
        final String hex = text.replace(":", "").toLowerCase(Locale.ROOT);
        if (!hex.matches("[0-9a-f]{64}"))
        {
            throw fail(where + "=\"" + text + "\": expected a SHA-256 fingerprint, 64 hex digits with or without"
                + " colons (openssl x509 -in CERT -noout -fingerprint -sha256)");
        }
        return hex;
    }

    private boolean bool(final JsonNode table, final String key, final boolean dflt, final String prefix)
        throws ConfigException
    {
        final JsonNode n = table.get(key);
        if (n == null)
        {
            return dflt;
        }
        if (!n.isBoolean())
        {
            throw fail(prefix + key + "=" + n + ": expected true or false (without quotes)");
        }
        return n.asBoolean();
    }

    private Limits readLimits(final JsonNode t) throws ConfigException
    {
        if (t == null)
        {
            return Limits.defaults();
        }
        if (!t.isObject())
        {
            throw fail("limits: expected a table, written [limits]");
        }
        checkKeys(t, "[limits].", LIMIT_KEYS);
        final int nbdClients = count(t, "nbd-clients", Limits.DEFAULT_NBD_CLIENTS, 1, 100_000);
        final int peerLinks = count(t, "peer-links", Limits.DEFAULT_PEER_LINKS, 1, 100_000);
        final int rate = count(t, "connection-rate", Limits.DEFAULT_CONNECTION_RATE, 1, 1_000_000);
        final long request = t.has("nbd-request") ? size(t, "nbd-request", "[limits].")
            : Units.parseSize(Limits.DEFAULT_NBD_REQUEST);
        if (request < Limits.MIN_NBD_REQUEST || request > Limits.MAX_NBD_REQUEST || Long.bitCount(request) != 1)
        {
            throw fail("[limits].nbd-request=" + t.get("nbd-request") + ": expected a power of two between 64KiB and"
                + " 32MiB");
        }
        final long inFlight = t.has("peer-in-flight") ? size(t, "peer-in-flight", "[limits].")
            : Units.parseSize(Limits.DEFAULT_PEER_IN_FLIGHT);
        if (inFlight < Limits.MIN_PEER_IN_FLIGHT || inFlight > Limits.MAX_PEER_IN_FLIGHT)
        {
            throw fail("[limits].peer-in-flight=" + t.get("peer-in-flight") + ": expected a size between 2MiB and"
                + " 1GiB");
        }
        return new Limits(nbdClients, peerLinks, rate, (int)request, inFlight);
    }

    private int count(final JsonNode table, final String key, final int dflt, final int min, final int max)
        throws ConfigException
    {
        final JsonNode n = table.get(key);
        if (n == null)
        {
            return dflt;
        }
        if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < min || n.asLong() > max)
        {
            throw fail("[limits]." + key + "=" + n + ": expected a whole number between " + min + " and " + max);
        }
        return n.asInt();
    }

    private VolumeConfig readVolume(final JsonNode v, final Set<String> peerNames) throws ConfigException
    {
        final String name = name(v, "[[volume]].name");
        final String where = "[[volume " + name + "]].";
        final String pathText = required(v, "path", where + "path");
        final Path path = path(pathText, where + "path");
        final long size = v.has("size") ? size(v, "size", where) : 0;
        if (v.has("size") && size <= 0)
        {
            throw fail(where + "size=" + v.get("size") + ": expected a positive size");
        }
        final String modeText = string(v, "mode", VolumeConfig.DEFAULT_MODE, where);
        if (!modeText.equals("one-way") && !modeText.equals("two-way"))
        {
            throw fail(where + "mode=\"" + modeText + "\": expected one-way (primary to standby) | two-way (both"
                + " nodes take writes)");
        }
        final boolean twoWay = modeText.equals("two-way");
        for (final String key : List.of("role", "ack", "after-split-brain", "source", "replication-log-size"))
        {
            if (twoWay && v.has(key))
            {
                throw fail(where + key + ": not used in two-way mode (both nodes take writes, each write is"
                    + " acknowledged once it is in the local image, and concurrent writes to a block are resolved"
                    + " by version vectors); remove it, or set mode = \"one-way\"");
            }
        }
        final VolumeConfig.Role role;
        if (twoWay)
        {
            role = VolumeConfig.Role.TWO_WAY;
        }
        else
        {
            final String roleText = required(v, "role", where + "role");
            try
            {
                role = VolumeConfig.Role.valueOf(roleText.toUpperCase(Locale.ROOT));
            }
            catch (final IllegalArgumentException e)
            {
                throw fail(where + "role=\"" + roleText + "\": expected primary | standby"
                    + (roleText.toLowerCase(Locale.ROOT).startsWith("two") ? " (for two-way, set mode = \"two-way\" and no"
                        + " role)" : ""));
            }
            if (role == VolumeConfig.Role.TWO_WAY)
            {
                throw fail(where + "role=\"" + roleText + "\": expected primary | standby (for two-way, set"
                    + " mode = \"two-way\" and no role)");
            }
        }
        final String peer;
        if (v.has("peer"))
        {
            peer = text(v.get("peer"), where + "peer");
            if (!peerNames.contains(peer))
            {
                throw fail(where + "peer=\"" + peer + "\": no [[peer]] has that name (defined: "
                    + (peerNames.isEmpty() ? "none" : String.join(", ", peerNames)) + ")");
            }
        }
        else if (peerNames.size() == 1)
        {
            peer = peerNames.iterator().next();
        }
        else
        {
            throw fail(where + "peer: missing; expected the name of one of the [[peer]] entries ("
                + (peerNames.isEmpty() ? "none defined" : String.join(", ", peerNames)) + ")");
        }
        final long blockSize = v.has("block-size") ? size(v, "block-size", where)
            : Units.parseSize(VolumeConfig.DEFAULT_BLOCK_SIZE);
        if (Long.bitCount(blockSize) != 1 || blockSize < VolumeConfig.MIN_BLOCK_SIZE
            || blockSize > VolumeConfig.MAX_BLOCK_SIZE)
        {
            throw fail(where + "block-size=" + v.get("block-size") + ": expected a power of two between 4KiB and 1MiB");
        }
        final String compressionText = string(v, "compression", VolumeConfig.DEFAULT_COMPRESSION, where);
        final Compression compression;
        try
        {
            compression = Compression.fromConfig(compressionText);
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + e.getMessage());
        }
        final long logBytes = v.has("replication-log-size") ? size(v, "replication-log-size", where)
            : Units.parseSize(VolumeConfig.DEFAULT_LOG_SIZE);
        if (logBytes < (1 << 20) || logBytes > (1L << 34))
        {
            throw fail(where + "replication-log-size=" + v.get("replication-log-size")
                + ": expected between 1MiB and 16GiB");
        }
        String nbd = null;
        if (v.has("nbd"))
        {
            nbd = text(v.get("nbd"), where + "nbd");
            final String problem = io.doppel.nbd.NbdServer.NbdAddress.problem(nbd);
            if (problem != null)
            {
                throw fail(where + "nbd=\"" + nbd + "\": " + problem);
            }
        }
        final String ackText = string(v, "ack", twoWay ? "async" : VolumeConfig.DEFAULT_ACK, where);
        final VolumeConfig.Ack ack;
        try
        {
            ack = VolumeConfig.Ack.valueOf(ackText.toUpperCase(Locale.ROOT));
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "ack=\"" + ackText + "\": expected async | received | sync");
        }
        final String splitText = string(v, "after-split-brain", VolumeConfig.DEFAULT_AFTER_SPLIT_BRAIN, where);
        final VolumeConfig.AfterSplitBrain afterSplitBrain;
        try
        {
            afterSplitBrain = VolumeConfig.AfterSplitBrain.valueOf(splitText.toUpperCase(Locale.ROOT).replace('-', '_'));
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "after-split-brain=\"" + splitText
                + "\": expected disconnect | discard-younger-primary | discard-least-changes");
        }
        final String sourceText = string(v, "source", VolumeConfig.DEFAULT_SOURCE, where);
        final VolumeConfig.Source source;
        try
        {
            source = VolumeConfig.Source.valueOf(sourceText.toUpperCase(Locale.ROOT));
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "source=\"" + sourceText + "\": expected writes (doppel's own write path: NBD, API)"
                + " | watch (another program writes the image file)");
        }
        if (source != VolumeConfig.Source.WATCH && (v.has("watch-rate") || v.has("watch-interval")))
        {
            throw fail(where + (v.has("watch-rate") ? "watch-rate" : "watch-interval") + ": only applies with"
                + " source = \"watch\" (this volume's source is \"" + sourceText + "\")");
        }
        final long watchRate = v.has("watch-rate") ? size(v, "watch-rate", where)
            : Units.parseSize(VolumeConfig.DEFAULT_WATCH_RATE);
        if (watchRate < VolumeConfig.MIN_WATCH_RATE)
        {
            throw fail(where + "watch-rate=" + v.get("watch-rate") + ": expected bytes per second, at least 1MiB");
        }
        final long watchInterval = duration(v, "watch-interval", VolumeConfig.DEFAULT_WATCH_INTERVAL, where);
        if (watchInterval < 10 || watchInterval > 86_400_000L)
        {
            throw fail(where + "watch-interval=" + v.get("watch-interval") + ": expected between 10ms and 24h");
        }
        final String members = groupMembers(pathText, path, where, role, source, v);
        return new VolumeConfig(name, path, size, role, peer, (int)blockSize, compression, logBytes, nbd, ack,
            afterSplitBrain, source, watchRate, watchInterval, members, null);
    }

    /**
     * A {@code path} naming a directory (it exists as one, or ends with '/') or holding a glob in its last
     * part makes the entry a volume group: returns the file-name pattern of its members, or null for one
     * image. The directory must exist on both sides: a standby creates its members' files in it.
     */
    private String groupMembers(final String pathText, final Path path, final String where,
        final VolumeConfig.Role role, final VolumeConfig.Source source, final JsonNode v) throws ConfigException
    {
        // An existing file whose name holds '[' or '*' is that file, not a pattern.
        final boolean glob = path.getFileName() != null && hasGlob(path.getFileName().toString())
            && !Files.exists(path);
        if (!glob && !pathText.endsWith("/") && !Files.isDirectory(path))
        {
            final Path parent = path.getParent();
            if (parent != null && hasGlob(parent.toString()) && !Files.exists(parent))
            {
                throw fail(where + "path=\"" + pathText + "\": a glob is accepted only in the file name, not in the"
                    + " directories above it (expected e.g. \"/srv/images/*.img\")");
            }
            return null;
        }
        final String kind = glob ? "a glob (a volume group: each matching file is a volume)"
            : "a directory (a volume group: each file in it is a volume)";
        final Path dir = glob ? path.getParent() : path;
        if (dir == null || hasGlob(dir.toString()))
        {
            throw fail(where + "path=\"" + pathText + "\": a glob is accepted only in the file name, not in the"
                + " directories above it (expected e.g. \"/srv/images/*.img\")");
        }
        if (!Files.isDirectory(dir))
        {
            throw fail(where + "path=\"" + pathText + "\" names " + kind + ", but " + dir + (Files.exists(dir)
                ? " is not a directory" : " does not exist") + "; expected an existing directory (create it first)");
        }
        if (role != VolumeConfig.Role.PRIMARY && role != VolumeConfig.Role.STANDBY)
        {
            throw fail(where + "path=\"" + pathText + "\" names " + kind + " with mode = \"two-way\": a volume group"
                + " is accepted only in one-way mode, as primary (with source = \"watch\") or standby");
        }
        if (role == VolumeConfig.Role.PRIMARY && source != VolumeConfig.Source.WATCH)
        {
            throw fail(where + "path=\"" + pathText + "\" names " + kind + ", which needs source = \"watch\" on a"
                + " primary (this volume's source is \"" + source.configName() + "\"); a volume with source = \""
                + source.configName() + "\" needs the path of one image file or block device");
        }
        if (v.has("size"))
        {
            throw fail(where + "size=" + v.get("size") + ": not accepted with path=\"" + pathText + "\", " + kind
                + ": each member's size is its file's (remove size)");
        }
        if (v.has("nbd"))
        {
            throw fail(where + "nbd=" + v.get("nbd") + ": not accepted with path=\"" + pathText + "\", " + kind
                + ": members of a volume group are not served over NBD (configure a volume per image for that)");
        }
        final String pattern = glob ? path.getFileName().toString() : VolumeConfig.ALL_FILES;
        try
        {
            java.nio.file.FileSystems.getDefault().getPathMatcher("glob:" + pattern);
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "path=\"" + pathText + "\": not a usable glob (" + (e instanceof
                java.util.regex.PatternSyntaxException ? ((java.util.regex.PatternSyntaxException)e).getDescription()
                : e.getMessage()) + "); expected *, ?, [abc] or {a,b} in the file name");
        }
        return pattern;
    }

    private static boolean hasGlob(final String text)
    {
        return text.indexOf('*') >= 0 || text.indexOf('?') >= 0 || text.indexOf('[') >= 0 || text.indexOf('{') >= 0;
    }

    /**
     * A member of group G is named G.FILE, so no other volume may be named so: its data-dir files, its
     * /status entry and its handshake name would clash with a member's.
     */
    private void checkGroupNames(final List<VolumeConfig> volumes) throws ConfigException
    {
        for (final VolumeConfig g : volumes)
        {
            if (!g.isGroup())
            {
                continue;
            }
            for (final VolumeConfig v : volumes)
            {
                if (v != g && v.name().startsWith(g.name() + "."))
                {
                    throw fail("[[volume]].name=\"" + v.name() + "\": starts with \"" + g.name() + ".\", which names"
                        + " the members of volume group " + g.name() + " (path=\"" + g.path() + "\"); expected a name"
                        + " that does not start with \"" + g.name() + ".\"");
                }
            }
        }
    }

    private List<JsonNode> arrayOfTables(final JsonNode root, final String key) throws ConfigException
    {
        final JsonNode n = root.get(key);
        final List<JsonNode> out = new ArrayList<>();
        if (n == null)
        {
            return out;
        }
        if (!n.isArray())
        {
            throw fail(key + ": expected an array of tables, written [[" + key + "]]");
        }
        for (final JsonNode e : n)
        {
            if (!e.isObject())
            {
                throw fail(key + ": expected an array of tables, written [[" + key + "]]");
            }
            out.add(e);
        }
        return out;
    }

    private void checkKeys(final JsonNode table, final String prefix, final List<String> known) throws ConfigException
    {
        final Iterator<String> names = table.fieldNames();
        while (names.hasNext())
        {
            final String key = names.next();
            if (!known.contains(key))
            {
                throw fail(prefix + key + ": unknown key (accepted here: " + String.join(", ", known) + ")");
            }
        }
    }

    private String name(final JsonNode table, final String where) throws ConfigException
    {
        final String name = required(table, "name", where);
        if (!name.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,62}"))
        {
            throw fail(where + "=\"" + name + "\": expected 1-63 characters of letters, digits, '.', '_' or '-'");
        }
        return name;
    }

    private String required(final JsonNode table, final String key, final String where) throws ConfigException
    {
        final JsonNode n = table.get(key);
        if (n == null)
        {
            throw fail(where + ": missing (required)");
        }
        return text(n, where);
    }

    private String string(final JsonNode table, final String key, final String dflt, final String prefix)
        throws ConfigException
    {
        final JsonNode n = table.get(key);
        return n == null ? dflt : text(n, prefix + key);
    }

    private String text(final JsonNode n, final String where) throws ConfigException
    {
        if (!n.isTextual())
        {
            throw fail(where + "=" + n + ": expected a string in double quotes");
        }
        return n.asText();
    }

    private long size(final JsonNode table, final String key, final String prefix) throws ConfigException
    {
        final JsonNode n = table.get(key);
        if (n.isIntegralNumber())
        {
            if (!n.canConvertToLong())
            {
                // asLong() would keep the low 64 bits: 2^64 + 4096 would read as 4096
                throw fail(prefix + key + "=" + n + ": too large; expected " + Units.SIZE_FORMS);
            }
            return n.asLong();
        }
        return parse(n, prefix + key, Units::parseSize);
    }

    private long duration(final JsonNode table, final String key, final String dflt, final String prefix)
        throws ConfigException
    {
        final JsonNode n = table.get(key);
        if (n == null)
        {
            return Units.parseDurationMillis(dflt);
        }
        return parse(n, prefix + key, Units::parseDurationMillis);
    }

    private long parse(final JsonNode n, final String where, final Function<String, Long> parser)
        throws ConfigException
    {
        final String text = text(n, where);
        try
        {
            return parser.apply(text);
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "=\"" + text + "\": " + e.getMessage());
        }
    }

    /** A path from the config; one the OS cannot name (a NUL byte in it) is refused here, not at startup. */
    private Path path(final String text, final String where) throws ConfigException
    {
        try
        {
            return Path.of(text);
        }
        catch (final java.nio.file.InvalidPathException e)
        {
            throw fail(where + "=\"" + printable(text) + "\": not a usable path (" + e.getReason() + ")");
        }
    }

    /** {@code text} with control characters written as backslash-u escapes, so a message never carries a raw NUL. */
    private static String printable(final String text)
    {
        final StringBuilder b = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++)
        {
            final char c = text.charAt(i);
            if (Character.isISOControl(c))
            {
                b.append(String.format(Locale.ROOT, "\\u%04x", (int)c));
            }
            else
            {
                b.append(c);
            }
        }
        return b.toString();
    }

    private InetSocketAddress address(final String text, final String where) throws ConfigException
    {
        try
        {
            return HostPort.parse(text);
        }
        catch (final IllegalArgumentException e)
        {
            throw fail(where + "=\"" + text + "\": " + e.getMessage());
        }
    }

    private ConfigException fail(final String message)
    {
        return new ConfigException(source + ": " + message);
    }
}
