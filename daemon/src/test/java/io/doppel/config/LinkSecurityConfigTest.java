package io.doppel.config;

import io.doppel.daemon.DaemonMain;
import io.doppel.net.TestCerts;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The link-security keys of the config: a link that leaves the host needs TLS, a pre-shared key or an explicit
 * {@code insecure = true}; key files must be private and long enough; fingerprints and TLS files are checked at
 * load, each error naming the key, the value and what is accepted (and {@code doppel daemon} exits 2 on them).
 */
class LinkSecurityConfigTest
{
    @TempDir
    Path dir;

    private static String config(final String listen, final String nodeExtra, final String peerAddress,
        final String peerExtra)
    {
        return String.join("\n",
            "[node]",
            "name = \"alpha\"",
            "listen = \"" + listen + "\"",
            nodeExtra,
            "[[peer]]",
            "name = \"beta\"",
            "address = \"" + peerAddress + "\"",
            peerExtra,
            "[[volume]]",
            "name = \"vm1\"",
            "path = \"/tmp/vm1.img\"",
            "role = \"primary\"",
            "");
    }

    private static DoppelConfig parse(final String toml) throws ConfigException
    {
        return ConfigLoader.parse(toml, "t.toml");
    }

    private static void refused(final String toml, final String... parts)
    {
        assertThatThrownBy(() -> parse(toml)).isInstanceOf(ConfigException.class).hasMessageStartingWith("t.toml: ")
            .satisfies(e ->
            {
                for (final String part : parts)
                {
                    assertThat(e.getMessage()).contains(part);
                }
            });
    }

    private Path key(final String name, final String text, final String mode) throws Exception
    {
        final Path f = dir.resolve(name);
        Files.writeString(f, text);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString(mode));
        return f;
    }

    @Test
    void aPeerOffLoopbackNeedsTlsOrAKeyOrInsecure() throws Exception
    {
        refused(config("127.0.0.1:7788", "", "10.0.0.2:7788", ""), "[[peer beta]].address=\"10.0.0.2:7788\"",
            "off loopback", "tls-cert", "psk-file", "insecure = true");
        refused(config("127.0.0.1:7788", "", "beta.example:7788", ""), "off loopback");
        final DoppelConfig insecure = parse(config("127.0.0.1:7788", "", "10.0.0.2:7788", "insecure = true"));
        assertThat(insecure.peers().get(0).insecure()).isTrue();
        final Path psk = key("psk", "a".repeat(64) + "\n", "rw-------");
        final DoppelConfig keyed = parse(config("127.0.0.1:7788", "", "10.0.0.2:7788", "psk-file = \"" + psk + "\""));
        assertThat(keyed.peers().get(0).psk().bytes()).hasSize(64).as("trailing newline trimmed");
        assertThat(keyed.peers().get(0).psk().toString()).doesNotContain("aaaa");
        // loopback stays as simple as before
        assertThat(parse(config("127.0.0.1:7788", "", "127.0.0.1:7789", "")).peers().get(0).insecure()).isFalse();
        assertThat(parse(config("[::1]:7788", "", "localhost:7789", "")).peers()).hasSize(1);
    }

    @Test
    void aListenAddressOffLoopbackNeedsTlsOrAKeyPerPeer() throws Exception
    {
        refused(config("0.0.0.0:7788", "", "127.0.0.1:7789", ""), "[node].listen=\"0.0.0.0:7788\"", "off loopback",
            "peer beta", "psk-file", "insecure = true");
        assertThat(parse(config("0.0.0.0:7788", "", "127.0.0.1:7789", "insecure = true")).node().listen().getPort())
            .isEqualTo(7788);
    }

    @Test
    void theDaemonExitsWith2OnAnInsecureConfig() throws Exception
    {
        final Path file = dir.resolve("doppel.toml");
        Files.writeString(file, config("127.0.0.1:7788", "data-dir = \"" + dir + "\"", "192.168.1.20:7788", ""));
        assertThat(DaemonMain.run(file)).isEqualTo(DaemonMain.EXIT_CONFIG);
    }

    @Test
    void pskFilesMustBePrivateLongEnoughAndReadable() throws Exception
    {
        final Path open = key("open", "b".repeat(64), "rw-r--r--");
        refused(config("127.0.0.1:7788", "", "10.0.0.2:7788", "psk-file = \"" + open + "\""),
            "[[peer beta]].psk-file=\"" + open + "\"", "group or others", "chmod 600 " + open);
        final Path group = key("group", "b".repeat(64), "rw-r-----");
        refused(config("127.0.0.1:7788", "", "10.0.0.2:7788", "psk-file = \"" + group + "\""), "chmod 600");
        final Path shortKey = key("short", "secret\n", "rw-------");
        refused(config("127.0.0.1:7788", "", "10.0.0.2:7788", "psk-file = \"" + shortKey + "\""), "6 bytes",
            "at least 32", "openssl rand -hex 32");
        refused(config("127.0.0.1:7788", "", "10.0.0.2:7788", "psk-file = \"" + dir.resolve("absent") + "\""),
            "psk-file", "cannot read the key file");
        refused(config("127.0.0.1:7788", "", "127.0.0.1:7789", "psk-file = 5"), "[[peer beta]].psk-file=5",
            "expected a string");
    }

    @Test
    void badValuesAndUnknownKeysNameWhatIsAccepted() throws Exception
    {
        refused(config("127.0.0.1:7788", "", "127.0.0.1:7789", "insecure = \"yes\""),
            "[[peer beta]].insecure=\"yes\"", "expected true or false");
        refused(config("127.0.0.1:7788", "", "127.0.0.1:7789", "psk = \"x\""), "[[peer]].psk", "unknown key",
            "psk-file, tls-fingerprint, insecure");
        refused(config("127.0.0.1:7788", "tls-certificate = \"/x\"", "127.0.0.1:7789", ""), "[node].tls-certificate",
            "unknown key", "tls-cert, tls-key, tls-ca");
        final Path pem = key("some.pem", "x", "rw-------");
        refused(config("127.0.0.1:7788", "tls-cert = \"" + pem + "\"", "127.0.0.1:7789", ""),
            "[node].tls-cert is set without [node].tls-key", "go together");
        refused(config("127.0.0.1:7788", "tls-ca = \"" + pem + "\"", "127.0.0.1:7789", ""),
            "[node].tls-ca is set without tls-cert and tls-key");
        refused(config("127.0.0.1:7788", "", "127.0.0.1:7789", "tls-fingerprint = \"ab:cd\""),
            "[[peer beta]].tls-fingerprint=\"ab:cd\"", "64 hex digits");
        refused(config("127.0.0.1:7788", "", "127.0.0.1:7789", "tls-fingerprint = \"" + "ab".repeat(32) + "\""),
            "tls-fingerprint: set, but TLS is off");
        refused(config("127.0.0.1:7788", "tls-cert = \"" + dir.resolve("no.pem") + "\"\ntls-key = \"" + dir.resolve(
            "no.key") + "\"", "127.0.0.1:7789", ""), "[node].tls-cert=\"" + dir.resolve("no.pem") + "\"",
            "no such file");
    }

    @Test
    void tlsFilesMadeByOpensslLoadAndBadOnesAreNamed() throws Exception
    {
        TestCerts.assumeOpenssl();
        final TestCerts certs = new TestCerts(dir.resolve("keys"));
        final Path ca = certs.ca("ca");
        final Path[] alpha = certs.node("alpha", "ca", "alpha");
        final String tls = "tls-cert = \"" + alpha[0] + "\"\ntls-key = \"" + alpha[1] + "\"\ntls-ca = \"" + ca + "\"";
        final DoppelConfig c = parse(config("0.0.0.0:7788", tls, "10.0.0.2:7788", ""));
        assertThat(c.node().tls().cert()).isEqualTo(alpha[0]);
        assertThat(c.node().tls().ca()).isEqualTo(ca);

        // a pinned fingerprint as openssl prints it (colons, upper case) is kept as lowercase hex
        final String pin = certs.fingerprint(alpha[0]);
        final String pinned = "tls-cert = \"" + alpha[0] + "\"\ntls-key = \"" + alpha[1] + "\"";
        assertThat(parse(config("0.0.0.0:7788", pinned, "10.0.0.2:7788", "tls-fingerprint = \"" + pin + "\""))
            .peers().get(0).tlsFingerprint()).isEqualTo(pin.replace(":", "").toLowerCase());
        refused(config("0.0.0.0:7788", pinned, "10.0.0.2:7788", ""), "[[peer beta]].tls-fingerprint: missing",
            "tls-ca");

        // the certificate where the key belongs, and the other way round
        refused(config("127.0.0.1:7788", "tls-cert = \"" + alpha[1] + "\"\ntls-key = \"" + alpha[1] + "\"",
            "127.0.0.1:7789", ""), "[node].tls-cert=\"" + alpha[1] + "\"", "BEGIN CERTIFICATE");
        final Path certAsKey = Files.copy(alpha[0], dir.resolve("cert-as-key.pem"));
        Files.setPosixFilePermissions(certAsKey, PosixFilePermissions.fromString("rw-------"));
        refused(config("127.0.0.1:7788", "tls-cert = \"" + alpha[0] + "\"\ntls-key = \"" + certAsKey + "\"",
            "127.0.0.1:7789", ""), "[node].tls-key=\"" + certAsKey + "\"", "PKCS#8");
        final Path legacy = dir.resolve("legacy.key");
        Files.writeString(legacy, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
        Files.setPosixFilePermissions(legacy, PosixFilePermissions.fromString("rw-------"));
        refused(config("127.0.0.1:7788", "tls-cert = \"" + alpha[0] + "\"\ntls-key = \"" + legacy + "\"",
            "127.0.0.1:7789", ""), "openssl pkcs8 -topk8 -nocrypt");
    }
}
