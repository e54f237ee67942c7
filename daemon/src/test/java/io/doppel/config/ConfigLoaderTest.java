package io.doppel.config;

import io.doppel.pipeline.Compression;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ConfigLoaderTest
{
    private static final String NODE = String.join("\n",
        "[node]",
        "name = \"alpha\"",
        "listen = \"127.0.0.1:7788\"",
        "admin = \"127.0.0.1:7790\"",
        "data-dir = \"/var/lib/doppel\"",
        "");
    private static final String PEER = String.join("\n",
        "[[peer]]",
        "name = \"beta\"",
        "address = \"127.0.0.1:7789\"",
        "");
    private static final String VOLUME = String.join("\n",
        "[[volume]]",
        "name = \"vm1\"",
        "path = \"/var/lib/doppel/images/vm1.img\"",
        "size = \"10GiB\"",
        "role = \"primary\"",
        "peer = \"beta\"",
        "block-size = \"4KiB\"",
        "compression = \"lz4\"",
        "");
    private static final String EXAMPLE = NODE + PEER + VOLUME;

    private static DoppelConfig parse(final String toml) throws ConfigException
    {
        return ConfigLoader.parse(toml, "test.toml");
    }

    /** Asserts that {@code toml} is refused with a message containing every one of {@code parts}. */
    private static void refused(final String toml, final String... parts)
    {
        assertThatThrownBy(() -> parse(toml))
            .isInstanceOf(ConfigException.class)
            .hasMessageStartingWith("test.toml: ")
            .satisfies(e ->
            {
                for (final String part : parts)
                {
                    assertThat(e.getMessage()).contains(part);
                }
            });
    }

    /** The example with one line of the volume table replaced (or added when {@code old} is null). */
    private static String volumeWith(final String old, final String replacement)
    {
        return NODE + PEER + (old == null ? VOLUME + replacement + "\n" : VOLUME.replace(old, replacement));
    }

    // ------------------------------------------------------------------ the example

    @Test
    void exampleParsesWithTheRightValues() throws ConfigException
    {
        final DoppelConfig config = parse(EXAMPLE);
        final NodeConfig node = config.node();
        assertThat(node.name()).isEqualTo("alpha");
        assertThat(node.listen().getHostString()).isEqualTo("127.0.0.1");
        assertThat(node.listen().getPort()).isEqualTo(7788);
        assertThat(node.listen().isUnresolved()).isTrue();
        assertThat(node.admin().getHostString()).isEqualTo("127.0.0.1");
        assertThat(node.admin().getPort()).isEqualTo(7790);
        assertThat(node.dataDir()).isEqualTo(Path.of("/var/lib/doppel"));
        assertThat(node.heartbeatIntervalMillis()).isEqualTo(1000);
        assertThat(node.heartbeatTimeoutMillis()).isEqualTo(10_000);
        assertThat(node.logLevel()).isEqualTo("info");

        assertThat(config.peers()).hasSize(1);
        final PeerConfig peer = config.peers().get(0);
        assertThat(peer.name()).isEqualTo("beta");
        assertThat(peer.address().getHostString()).isEqualTo("127.0.0.1");
        assertThat(peer.address().getPort()).isEqualTo(7789);
        assertThat(config.peer("beta")).contains(peer);
        assertThat(config.peer("gamma")).isEmpty();

        assertThat(config.volumes()).hasSize(1);
        final VolumeConfig volume = config.volumes().get(0);
        assertThat(volume.name()).isEqualTo("vm1");
        assertThat(volume.path()).isEqualTo(Path.of("/var/lib/doppel/images/vm1.img"));
        assertThat(volume.size()).isEqualTo(10L << 30);
        assertThat(volume.role()).isEqualTo(VolumeConfig.Role.PRIMARY);
        assertThat(volume.role().configName()).isEqualTo("primary");
        assertThat(volume.peer()).isEqualTo("beta");
        assertThat(volume.blockSize()).isEqualTo(4096);
        assertThat(volume.compression()).isEqualTo(Compression.LZ4);
        assertThat(volume.logBytes()).isEqualTo(64L << 20);
        assertThat(volume.metadataPath(node.dataDir())).isEqualTo(Path.of("/var/lib/doppel/vm1.meta"));
    }

    @Test
    void loadReadsAFile(@TempDir final Path tmp) throws IOException, ConfigException
    {
        final Path file = tmp.resolve("doppel.toml");
        Files.writeString(file, EXAMPLE);
        assertThat(ConfigLoader.load(file).node().name()).isEqualTo("alpha");
        final Path missing = tmp.resolve("absent.toml");
        assertThatThrownBy(() -> ConfigLoader.load(missing))
            .isInstanceOf(ConfigException.class)
            .hasMessageContaining(missing.toString())
            .hasMessageContaining("cannot read config");
    }

    @Test
    void defaultsAndOptionalKeys() throws ConfigException
    {
        final DoppelConfig config = parse(String.join("\n",
            "[node]",
            "name = \"alpha\"",
            "heartbeat-interval = \"250ms\"",
            "heartbeat-timeout = \"2s\"",
            "log-level = \"debug\"",
            "[[peer]]",
            "name = \"beta\"",
            "address = \"[::1]:7789\"",
            "[[volume]]",
            "name = \"vm2\"",
            "path = \"/dev/vdb\"",
            "role = \"STANDBY\"",
            "compression = \"ZSTD\"",
            "block-size = 65536",
            "replication-log-size = \"1GiB\"",
            ""));
        assertThat(config.node().listen().getPort()).isEqualTo(7788);
        assertThat(config.node().admin().getPort()).isEqualTo(7790);
        assertThat(config.node().dataDir()).isEqualTo(Path.of("/var/lib/doppel"));
        assertThat(config.node().adminTokenFile()).isEqualTo(Path.of("/var/lib/doppel/admin.token"));
        assertThat(config.node().heartbeatIntervalMillis()).isEqualTo(250);
        assertThat(config.node().heartbeatTimeoutMillis()).isEqualTo(2000);
        assertThat(config.node().logLevel()).isEqualTo("debug");
        assertThat(config.peers().get(0).address().getHostString()).isEqualTo("::1");
        final VolumeConfig v = config.volumes().get(0);
        assertThat(v.size()).as("no size: use the device's").isZero();
        assertThat(v.role()).isEqualTo(VolumeConfig.Role.STANDBY);
        assertThat(v.peer()).as("the only peer is the default").isEqualTo("beta");
        assertThat(v.blockSize()).isEqualTo(65536);
        assertThat(v.compression()).isEqualTo(Compression.ZSTD);
        assertThat(v.logBytes()).isEqualTo(1L << 30);
    }

    @Test
    void adminTokenFile() throws ConfigException
    {
        assertThat(parse("[node]\nname = \"a\"\ndata-dir = \"/srv/d\"\n").node().adminTokenFile())
            .as("default: under data-dir").isEqualTo(Path.of("/srv/d/admin.token"));
        assertThat(parse("[node]\nname = \"a\"\nadmin-token-file = \"/etc/doppel/admin.token\"\n").node()
            .adminTokenFile()).isEqualTo(Path.of("/etc/doppel/admin.token"));
        assertThatThrownBy(() -> parse("[node]\nname = \"a\"\nadmin-token-file = \"/etc/doppel/\"\n"))
            .isInstanceOf(ConfigException.class)
            .hasMessageContaining("[node].admin-token-file=\"/etc/doppel/\": expected the path of a file");
        assertThatThrownBy(() -> parse("[node]\nname = \"a\"\nadmin-token-file = 3\n"))
            .hasMessageContaining("[node].admin-token-file=3: expected a string");
    }

    @Test
    void integerSizes() throws ConfigException
    {
        final VolumeConfig v = parse(volumeWith("size = \"10GiB\"", "size = 4096")).volumes().get(0);
        assertThat(v.size()).isEqualTo(4096);
        final VolumeConfig w = parse(volumeWith("block-size = \"4KiB\"", "block-size = 1048576")).volumes().get(0);
        assertThat(w.blockSize()).isEqualTo(1 << 20);
    }

    // ------------------------------------------------------------------ unknown keys

    @Test
    void unknownKeyAtTheTopIsNamed()
    {
        refused("colour = \"blue\"\n" + EXAMPLE, "colour", "unknown key", "node, peer, volume");
    }

    @Test
    void unknownKeyInNodeIsNamed()
    {
        refused(EXAMPLE.replace("data-dir", "datadir"), "[node].datadir", "unknown key", "data-dir");
    }

    @Test
    void unknownKeyInPeerIsNamed()
    {
        refused(EXAMPLE.replace("address =", "adress ="), "[[peer]].adress", "unknown key");
    }

    @Test
    void unknownKeyInVolumeIsNamed()
    {
        refused(volumeWith("block-size = \"4KiB\"", "blocksize = \"4KiB\""), "[[volume]].blocksize", "unknown key",
            "block-size");
    }

    // ------------------------------------------------------------------ bad values

    @Test
    void blockSizeMustBeAPowerOfTwoBetween4KiBAnd1MiB()
    {
        final String expected = "power of two between 4KiB and 1MiB";
        refused(volumeWith("block-size = \"4KiB\"", "block-size = 3000"), "block-size", "3000", expected);
        refused(volumeWith("block-size = \"4KiB\"", "block-size = \"3000\""), "block-size", "3000", expected);
        refused(volumeWith("block-size = \"4KiB\"", "block-size = \"2KiB\""), "block-size", "2KiB", expected);
        refused(volumeWith("block-size = \"4KiB\"", "block-size = \"2MiB\""), "block-size", "2MiB", expected);
        refused(volumeWith("block-size = \"4KiB\"", "block-size = -4096"), "block-size", "-4096", expected);
        refused(volumeWith("block-size = \"4KiB\"", "block-size = \"4 kB\""), "block-size", "4 kB", "decimal units");
    }

    @Test
    void badCompressionNamesTheAcceptedList()
    {
        refused(volumeWith("compression = \"lz4\"", "compression = \"snappy\""), "[[volume vm1]].compression",
            "snappy", "none | lz4 | zstd");
        refused(volumeWith("compression = \"lz4\"", "compression = 1"), "compression", "expected a string");
    }

    @Test
    void nbdAndAckKeys() throws ConfigException
    {
        assertThat(parse(EXAMPLE).volumes().get(0).nbd()).isNull();
        assertThat(parse(EXAMPLE).volumes().get(0).ack()).isEqualTo(VolumeConfig.Ack.SYNC);
        assertThat(parse(volumeWith(null, "nbd = \"127.0.0.1:10809\"")).volumes().get(0).nbd())
            .isEqualTo("127.0.0.1:10809");
        assertThat(parse(volumeWith(null, "nbd = \"10809\"")).volumes().get(0).hasNbd()).isTrue();
        assertThat(parse(volumeWith(null, "nbd = \"unix:/run/doppel/vm1.sock\"")).volumes().get(0).nbd())
            .isEqualTo("unix:/run/doppel/vm1.sock");
        assertThat(parse(volumeWith(null, "ack = \"async\"")).volumes().get(0).ack()).isEqualTo(VolumeConfig.Ack.ASYNC);
        refused(volumeWith(null, "nbd = \"unix:relative.sock\""), "[[volume vm1]].nbd", "unix:/absolute/path");
        refused(volumeWith(null, "nbd = \"127.0.0.1:99999\""), "nbd", "99999", "out of range");
        refused(volumeWith(null, "ack = \"fast\""), "[[volume vm1]].ack=\"fast\"", "async | received | sync");
        assertThat(parse(EXAMPLE).volumes().get(0).afterSplitBrain()).isEqualTo(VolumeConfig.AfterSplitBrain.DISCONNECT);
        assertThat(parse(volumeWith(null, "after-split-brain = \"discard-least-changes\"")).volumes().get(0)
            .afterSplitBrain()).isEqualTo(VolumeConfig.AfterSplitBrain.DISCARD_LEAST_CHANGES);
        refused(volumeWith(null, "after-split-brain = \"keep-both\""), "[[volume vm1]].after-split-brain=\"keep-both\"",
            "disconnect | discard-younger-primary | discard-least-changes");
    }

    @Test
    void sourceAndWatchKeys() throws ConfigException
    {
        final VolumeConfig plain = parse(EXAMPLE).volumes().get(0);
        assertThat(plain.source()).isEqualTo(VolumeConfig.Source.WRITES);
        assertThat(plain.watched()).isFalse();
        final VolumeConfig watched = parse(volumeWith(null,
            "source = \"watch\"\nwatch-rate = \"50MiB\"\nwatch-interval = \"2s\"")).volumes().get(0);
        assertThat(watched.source()).isEqualTo(VolumeConfig.Source.WATCH);
        assertThat(watched.watched()).isTrue();
        assertThat(watched.watchRate()).isEqualTo(50L << 20);
        assertThat(watched.watchIntervalMillis()).isEqualTo(2000);
        assertThat(watched.withRole(VolumeConfig.Role.STANDBY).watched()).as("a standby is never watched").isFalse();
        final VolumeConfig defaults = parse(volumeWith(null, "source = \"WATCH\"")).volumes().get(0);
        assertThat(defaults.watchRate()).isEqualTo(200L << 20);
        assertThat(defaults.watchIntervalMillis()).isEqualTo(10_000);
        refused(volumeWith(null, "source = \"nbd-only\""), "[[volume vm1]].source=\"nbd-only\"", "writes", "watch");
        refused(volumeWith(null, "watch-rate = \"50MiB\""), "[[volume vm1]].watch-rate", "only applies with source");
        refused(volumeWith(null, "source = \"watch\"\nwatch-rate = \"64KiB\""), "watch-rate=\"64KiB\"",
            "at least 1MiB");
        refused(volumeWith(null, "source = \"watch\"\nwatch-interval = \"1ms\""), "watch-interval=\"1ms\"",
            "between 10ms and 24h");
        refused(volumeWith(null, "source = \"watch\"\nwatch-interval = \"soon\""), "watch-interval=\"soon\"");
    }

    /** A volume table for a group: {@code path} and {@code extra} lines, role primary unless extra says. */
    private static String group(final String path, final String extra)
    {
        return NODE + PEER + String.join("\n",
            "[[volume]]",
            "name = \"images\"",
            "path = \"" + path + "\"",
            extra.contains("role") ? "" : "role = \"primary\"",
            extra,
            "");
    }

    @Test
    void shouldReadDirectoriesAndGlobsAsVolumeGroups(@TempDir final Path tmp) throws Exception
    {
        final Path dir = Files.createDirectories(tmp.resolve("images"));
        final VolumeConfig byDir = parse(group(dir.toString(), "source = \"watch\"")).volumes().get(0);
        assertThat(byDir.isGroup()).isTrue();
        assertThat(byDir.members()).isEqualTo("*");
        assertThat(byDir.groupDirectory()).isEqualTo(dir);
        final VolumeConfig byGlob = parse(group(dir + "/*.img", "source = \"watch\"")).volumes().get(0);
        assertThat(byGlob.members()).isEqualTo("*.img");
        assertThat(byGlob.groupDirectory()).isEqualTo(dir);
        assertThat(byGlob.memberMatcher().matches(Path.of("vm1.img"))).isTrue();
        assertThat(byGlob.memberMatcher().matches(Path.of("notes.txt"))).isFalse();
        final VolumeConfig member = byGlob.member("vm1.img", 0);
        assertThat(member.name()).isEqualTo("images.vm1.img");
        assertThat(member.path()).isEqualTo(dir.resolve("vm1.img"));
        assertThat(member.group()).isEqualTo("images");
        assertThat(member.isGroup()).isFalse();
        assertThat(member.watched()).isTrue();
        assertThat(byGlob.memberFileName("images.vm1.img")).isEqualTo("vm1.img");
        assertThat(byGlob.memberFileName("other.vm1.img")).isNull();
        assertThat(byGlob.memberNameProblem("my disk.img")).contains("\"my disk.img\"", "letters, digits");
        assertThat(byGlob.memberNameProblem(".hidden.img")).isNotNull();
        assertThat(byGlob.memberNameProblem("x".repeat(VolumeConfig.MAX_MEMBER_NAME))).contains("at most 200");
        // A standby group: a directory, whatever source says (a standby ignores it).
        final VolumeConfig standby = parse(group(dir + "/", "role = \"standby\"")).volumes().get(0);
        assertThat(standby.isGroup()).isTrue();
        assertThat(standby.groupDirectory()).isEqualTo(dir);
        // A plain file is no group, even when its name has glob characters in it.
        final Path odd = Files.createFile(dir.resolve("vm[1].img"));
        assertThat(parse(group(odd.toString(), "source = \"watch\"")).volumes().get(0).isGroup()).isFalse();
        assertThat(parse(EXAMPLE).volumes().get(0).isGroup()).isFalse();
    }

    @Test
    void shouldRefuseBadVolumeGroupsNamingPathValueAndWhatIsAccepted(@TempDir final Path tmp) throws Exception
    {
        final Path dir = Files.createDirectories(tmp.resolve("images"));
        refused(group(tmp.resolve("nowhere") + "/", "source = \"watch\""), "[[volume images]].path=\"",
            "nowhere/\" names a directory", "does not exist", "expected an existing directory");
        refused(group(tmp.resolve("nowhere") + "/*.img", "source = \"watch\""), "names a glob", "does not exist");
        final Path file = Files.createFile(tmp.resolve("plain"));
        refused(group(file + "/*.img", "source = \"watch\""), "is not a directory");
        refused(group(tmp + "/*/vm1.img", "source = \"watch\""), "glob is accepted only in the file name");
        refused(group(dir.toString(), ""), "[[volume images]].path=\"" + dir + "\" names a directory",
            "needs source = \"watch\" on a primary", "this volume's source is \"writes\"");
        refused(group(dir.toString(), "source = \"watch\"\nsize = \"1GiB\""), "[[volume images]].size=\"1GiB\"",
            "each member's size is its file's");
        refused(group(dir.toString(), "source = \"watch\"\nnbd = \"127.0.0.1:10809\""), "[[volume images]].nbd=",
            "not served over NBD");
        refused(group(dir + "/[a.img", "source = \"watch\""), "not a usable glob", "expected *, ?, [abc] or {a,b}");
        refused(NODE + PEER + String.join("\n", "[[volume]]", "name = \"images\"", "path = \"" + dir + "\"",
            "mode = \"two-way\"", ""), "[[volume images]].path=\"" + dir + "\" names a directory",
            "with mode = \"two-way\"", "only in one-way mode");
        refused(group(dir.toString(), "source = \"watch\"") + String.join("\n", "[[volume]]",
            "name = \"images.vm1.img\"", "path = \"/srv/vm1.img\"", "role = \"primary\"", ""),
            "[[volume]].name=\"images.vm1.img\": starts with \"images.\"", "members of volume group images");
    }

    @Test
    void modeKey() throws ConfigException
    {
        assertThat(parse(EXAMPLE).volumes().get(0).twoWay()).as("default one-way").isFalse();
        final String twoWay = volumeWith("role = \"primary\"", "mode = \"two-way\"");
        final VolumeConfig v = parse(twoWay).volumes().get(0);
        assertThat(v.twoWay()).isTrue();
        assertThat(v.role()).isEqualTo(VolumeConfig.Role.TWO_WAY);
        assertThat(v.role().configName()).isEqualTo("two-way");
        assertThat(v.ack()).as("answered once local").isEqualTo(VolumeConfig.Ack.ASYNC);
        assertThat(v.versionsPath(Path.of("/d"))).isEqualTo(Path.of("/d/vm1.versions"));
        assertThat(parse(volumeWith(null, "mode = \"one-way\"")).volumes().get(0).role())
            .isEqualTo(VolumeConfig.Role.PRIMARY);
        refused(volumeWith(null, "mode = \"both\""), "[[volume vm1]].mode=\"both\"", "one-way", "two-way");
        refused(volumeWith(null, "mode = \"two-way\""), "[[volume vm1]].role: not used in two-way mode", "remove it");
        refused(twoWay + "ack = \"sync\"\n", "[[volume vm1]].ack: not used in two-way mode");
        refused(twoWay + "source = \"watch\"\n", "[[volume vm1]].source: not used in two-way mode");
        refused(volumeWith("role = \"primary\"", "role = \"two-way\""), "role=\"two-way\"",
            "set mode = \"two-way\" and no role");
    }

    @Test
    void badAddressesAreRefused()
    {
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \"127.0.0.1\""), "[node].listen",
            "127.0.0.1", "HOST:PORT");
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \"127.0.0.1:http\""), "[node].listen",
            "port is not a number");
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \"127.0.0.1:70000\""), "[node].listen",
            "port 70000 out of range", "1-65535");
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \"127.0.0.1:0\""), "port 0 out of range");
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \":7788\""), "[node].listen", "HOST:PORT");
        refused(EXAMPLE.replace("listen = \"127.0.0.1:7788\"", "listen = \"127.0.0.1:\""), "HOST:PORT");
        refused(EXAMPLE.replace("admin = \"127.0.0.1:7790\"", "admin = 7790"), "[node].admin", "expected a string");
        refused(EXAMPLE.replace("address = \"127.0.0.1:7789\"", "address = \"beta\""), "[[peer beta]].address",
            "HOST:PORT");
        refused(EXAMPLE.replace("address = \"127.0.0.1:7789\"", "address = \"beta:-1\""), "[[peer beta]].address",
            "out of range");
    }

    @Test
    void volumePeerMustNameAKnownPeer()
    {
        refused(volumeWith("peer = \"beta\"", "peer = \"gamma\""), "[[volume vm1]].peer", "gamma",
            "no [[peer]] has that name", "beta");
    }

    @Test
    void volumePeerIsRequiredWithSeveralPeers()
    {
        final String twoPeers = NODE + PEER + "[[peer]]\nname = \"gamma\"\naddress = \"127.0.0.3:7788\"\n"
            + VOLUME.replace("peer = \"beta\"\n", "");
        refused(twoPeers, "[[volume vm1]].peer: missing", "beta", "gamma");
    }

    @Test
    void duplicateNamesAreRefused()
    {
        refused(EXAMPLE + VOLUME, "[[volume]].name=\"vm1\"", "defined twice");
        refused(NODE + PEER + PEER + VOLUME, "[[peer]].name=\"beta\"", "defined twice");
    }

    @Test
    void peerWithThisNodesNameIsRefused()
    {
        refused(EXAMPLE.replace("name = \"beta\"", "name = \"alpha\"").replace("peer = \"beta\"", "peer = \"alpha\""),
            "[[peer]].name=\"alpha\"", "own name");
    }

    @Test
    void missingNodeTableIsRefused()
    {
        refused(PEER + VOLUME, "[node]", "missing");
        refused("node = \"alpha\"\n" + PEER + VOLUME, "[node]", "missing");
        refused(EXAMPLE.replace("name = \"alpha\"\n", ""), "[node].name", "missing (required)");
    }

    @Test
    void badNamesRolesSizesAndDurations()
    {
        refused(EXAMPLE.replace("name = \"vm1\"", "name = \"vm 1\""), "[[volume]].name=\"vm 1\"", "letters, digits");
        refused(EXAMPLE.replace("name = \"alpha\"", "name = \"-alpha\""), "[node].name");
        refused(volumeWith("role = \"primary\"", "role = \"master\""), "[[volume vm1]].role=\"master\"",
            "primary | standby");
        refused(volumeWith("role = \"primary\"\n", ""), "[[volume vm1]].role", "missing");
        refused(volumeWith("path = \"/var/lib/doppel/images/vm1.img\"\n", ""), "[[volume vm1]].path", "missing");
        refused(volumeWith("size = \"10GiB\"", "size = \"10 GB\""), "[[volume vm1]].size=\"10 GB\"", "GB",
            "decimal units");
        refused(volumeWith("size = \"10GiB\"", "size = 0"), "[[volume vm1]].size=0", "positive");
        refused(volumeWith("size = \"10GiB\"", "size = -5"), "[[volume vm1]].size=-5", "positive");
        refused(volumeWith("size = \"10GiB\"", "size = 1.5"), "[[volume vm1]].size", "expected a string");
        refused(volumeWith(null, "replication-log-size = \"512KiB\""), "replication-log-size", "1MiB and 16GiB");
        refused(volumeWith(null, "replication-log-size = \"32GiB\""), "replication-log-size", "1MiB and 16GiB");
        refused(EXAMPLE.replace("[node]\n", "[node]\nheartbeat-interval = \"5\"\n"), "[node].heartbeat-interval=\"5\"",
            "ms, s, m or h");
        refused(EXAMPLE.replace("[node]\n", "[node]\nheartbeat-interval = \"50ms\"\n"), "heartbeat-interval=50ms",
            "at least 100ms");
        refused(EXAMPLE.replace("[node]\n", "[node]\nheartbeat-timeout = \"1500ms\"\n"), "heartbeat-timeout=1500ms",
            "twice the interval");
        refused(EXAMPLE.replace("[node]\n", "[node]\nlog-level = \"trace\"\n"), "[node].log-level=\"trace\"",
            "error | warn | info | debug");
    }

    @Test
    void structuralErrors()
    {
        refused("this is not toml", "not valid TOML");
        refused("peer = \"beta\"\n" + NODE, "peer: expected an array of tables", "[[peer]]");
        refused(NODE + "[peer]\nname = \"beta\"\n", "peer: expected an array of tables");
    }

    // ------------------------------------------------------------------ units

    @Test
    void parseSizes()
    {
        assertThat(Units.parseSize("4KiB")).isEqualTo(4096);
        assertThat(Units.parseSize("10GiB")).isEqualTo(10L << 30);
        assertThat(Units.parseSize("4096")).isEqualTo(4096);
        assertThat(Units.parseSize("4096B")).isEqualTo(4096);
        assertThat(Units.parseSize(" 1 MiB ")).isEqualTo(1 << 20);
        assertThat(Units.parseSize("4k")).isEqualTo(4096);
        assertThat(Units.parseSize("2TiB")).isEqualTo(2L << 40);
        assertThat(Units.parseSize("0")).isZero();
    }

    @Test
    void badSizesAreRefusedWithTheAcceptedForms()
    {
        assertThatThrownBy(() -> Units.parseSize("10 GB"))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("unknown unit \"GB\"")
            .hasMessageContaining("decimal units");
        assertThatThrownBy(() -> Units.parseSize("-1"))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining(Units.SIZE_FORMS);
        assertThatThrownBy(() -> Units.parseSize("abc"))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining(Units.SIZE_FORMS);
        assertThatThrownBy(() -> Units.parseSize(""))
            .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Units.parseSize("1.5GiB"))
            .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> Units.parseSize("99999999999999999999"))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("too large");
        assertThatThrownBy(() -> Units.parseSize("8388608TiB"))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("too large");
        assertThat(Units.parseSize("8388607TiB")).isEqualTo(8388607L << 40);
    }

    @Test
    void durationsAndFormatting()
    {
        assertThat(Units.parseDurationMillis("500ms")).isEqualTo(500);
        assertThat(Units.parseDurationMillis("15s")).isEqualTo(15_000);
        assertThat(Units.parseDurationMillis("2m")).isEqualTo(120_000);
        assertThat(Units.parseDurationMillis("1h")).isEqualTo(3_600_000);
        assertThatThrownBy(() -> Units.parseDurationMillis("15"))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(Units.DURATION_FORMS);
        assertThatThrownBy(() -> Units.parseDurationMillis("1d")).isInstanceOf(IllegalArgumentException.class);
        assertThat(Units.formatBytes(512)).isEqualTo("512 B");
        assertThat(Units.formatBytes(4096)).isEqualTo("4.0 KiB");
        assertThat(Units.formatBytes(3L << 29)).isEqualTo("1.5 GiB");
    }

    // ------------------------------------------------------------------ NBD TLS

    @TempDir
    Path tlsDir;

    /** Real PEM files made by openssl (the loader parses them; the test skips without openssl). */
    private String nodeWithTls(final String extra) throws Exception
    {
        io.doppel.net.TestCerts.assumeOpenssl();
        final io.doppel.net.TestCerts pki = new io.doppel.net.TestCerts(tlsDir.resolve("pki"));
        final Path caCert = pki.ca("t");
        final Path[] issued = pki.node("alpha", "t", "alpha");
        final Path cert = Files.copy(issued[0], tlsDir.resolve("cert.pem"));
        final Path key = Files.copy(issued[1], tlsDir.resolve("key.pem"));
        Files.setPosixFilePermissions(key, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        final Path ca = Files.copy(caCert, tlsDir.resolve("ca.pem"));
        return NODE + "tls-cert = \"" + cert + "\"\ntls-key = \"" + key + "\"\ntls-ca = \"" + ca + "\"\n" + extra + "\n";
    }

    @Test
    void nbdOffLoopbackMustSayWhetherTlsIsRequired() throws Exception
    {
        refused(volumeWith(null, "nbd = \"0.0.0.0:10809\""), "[[volume vm1]].nbd=\"0.0.0.0:10809\" is off loopback",
            "nbd-tls = \"require\"", "nbd-tls = \"off\"");
        assertThat(parse(volumeWith(null, "nbd = \"10809\"")).node().nbdTls()).isEqualTo(NbdTlsMode.OFF);
        assertThat(parse(volumeWith(null, "nbd = \"unix:/run/doppel/vm1.sock\"")).node().nbdTls())
            .isEqualTo(NbdTlsMode.OFF);
        assertThat(parse(NODE.replace("data-dir", "nbd-tls = \"off\"\ndata-dir") + PEER + VOLUME
            + "nbd = \"0.0.0.0:10809\"\n").node().nbdTls()).as("plaintext chosen knowingly").isEqualTo(NbdTlsMode.OFF);
        final DoppelConfig tls = parse(nodeWithTls("nbd-tls = \"require\"") + PEER + VOLUME + "nbd = \"0.0.0.0:10809\"\n");
        assertThat(tls.node().nbdTls()).isEqualTo(NbdTlsMode.REQUIRE);
        assertThat(tls.node().tls().cert()).isEqualTo(tlsDir.resolve("cert.pem"));
    }

    @Test
    void tlsKeysAreCheckedTogetherAndForTheirFiles() throws Exception
    {
        refused(NODE.replace("data-dir", "nbd-tls = \"require\"\ndata-dir") + PEER + VOLUME,
            "[node].nbd-tls=\"require\": needs tls-cert, tls-key and tls-ca");
        refused(NODE.replace("data-dir", "nbd-tls = \"maybe\"\ndata-dir") + PEER + VOLUME,
            "[node].nbd-tls=\"maybe\": expected off | on | require");
        refused(NODE.replace("data-dir", "tls-cert = \"/nonexistent/cert.pem\"\ndata-dir") + PEER + VOLUME,
            "[node].tls-cert=\"/nonexistent/cert.pem\": no such file");
        final String withTls = nodeWithTls("");
        refused(withTls.replaceAll("tls-key = .*\n", "") + PEER + VOLUME, "[node].tls-cert is set without [node].tls-key");
        Files.setPosixFilePermissions(tlsDir.resolve("key.pem"),
            java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        refused(withTls + PEER + VOLUME, "[node].tls-key=\"" + tlsDir.resolve("key.pem") + "\"",
            "readable by every user", "chmod 600");
    }
}
