package io.doppel.nbd;

import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.TestCluster;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import io.doppel.net.TestCerts;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;

import static io.doppel.nbd.NbdTestSupport.run;
import static io.doppel.nbd.NbdTestSupport.toolExists;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * NBD over TLS with QEMU's own client: {@code nbd-tls = "require"}, qemu-img writes and reads the export
 * through {@code --object tls-creds-x509} (the client's certificate signed by the node's CA), and the copy
 * replicates. A plaintext client and a client whose certificate comes from another CA are refused, write
 * nothing, and the daemon's log says why.
 */
class NbdTlsTest
{
    private static final long SIZE = 64L << 20;

    @TempDir
    Path dir;

    @Test
    void qemuImgWritesAndReadsOverTlsAndOthersAreRefused() throws Exception
    {
        Assumptions.assumeTrue(toolExists("qemu-img") && toolExists("qemu-io"),
            "SKIPPED: qemu-img/qemu-io not installed (apt-get install qemu-utils)");
        TestCerts.assumeOpenssl();
        final TestCerts certs = new TestCerts(dir.resolve("pki"));
        final Path caCert = certs.ca("doppel");
        final Path[] server = certs.node("alpha", "doppel", "alpha");
        final Path clientDir = qemuCredentials("qemu-client", caCert, certs.node("vmhost", "doppel", "vmhost"));
        final Path rogueCa = certs.ca("rogue");
        final Path rogueDir = qemuCredentials("qemu-rogue", caCert, certs.node("mallory", "rogue", "mallory"));
        // qemu checks its own certificate against its CA file first: trust both CAs on the client side, so
        // it is the server that must refuse the foreign certificate
        Files.writeString(rogueDir.resolve("ca-cert.pem"), Files.readString(rogueCa),
            java.nio.file.StandardOpenOption.APPEND);

        final TestCluster cluster = new TestCluster(dir, SIZE);
        final int port = LoopbackPorts.free(1)[0];
        cluster.alphaNbd = "127.0.0.1:" + port;
        cluster.alphaNodeExtra = String.join("\n", "tls-cert = \"" + server[0] + "\"", "tls-key = \"" + server[1] + "\"",
            "tls-ca = \"" + caCert + "\"", "nbd-tls = \"require\"");
        // TLS on a node secures its peer links too: beta needs its own certificate from the same CA
        final Path[] betaCert = certs.node("beta", "doppel", "beta");
        cluster.betaNodeExtra = String.join("\n", "tls-cert = \"" + betaCert[0] + "\"", "tls-key = \"" + betaCert[1]
            + "\"", "tls-ca = \"" + caCert + "\"");
        final Path source = dir.resolve("source.raw");
        final byte[] data = new byte[8 << 20];
        new SplittableRandom(81).nextBytes(data);
        Files.write(source, data);
        final String export = "driver=nbd,host=127.0.0.1,port=" + port + ",export=vm1";

        try (DaemonProcesses daemons = new DaemonProcesses(dir))
        {
            daemons.start(cluster.betaConfig(), "beta");
            daemons.start(cluster.alphaConfig(), "alpha");
            daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);

            final NbdTestSupport.ToolResult write = run(120, "qemu-img", "convert", "-n",
                "--object", "tls-creds-x509,id=tls0,endpoint=client,dir=" + clientDir,
                "-f", "raw", source.toString(), "--target-image-opts", export + ",tls-creds=tls0");
            assertThat(write.exit()).as(write.describe() + "\n" + daemons.logs()).isZero();
            final Path back = dir.resolve("back.raw");
            final NbdTestSupport.ToolResult read = run(120, "qemu-img", "convert",
                "--object", "tls-creds-x509,id=tls0,endpoint=client,dir=" + clientDir,
                "--image-opts", export + ",tls-creds=tls0", "-O", "raw", back.toString());
            assertThat(read.exit()).as(read.describe()).isZero();
            assertThat(Arrays.equals(Files.readAllBytes(back), 0, data.length, data, 0, data.length))
                .as("qemu-img read back over TLS what it wrote").isTrue();
            daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);
            final String primaryHash = MixedImage.hash(cluster.alphaImage);
            assertThat(MixedImage.hash(cluster.betaImage)).as("replicated").isEqualTo(primaryHash);

            final NbdTestSupport.ToolResult plain = run(60, "qemu-io", "-f", "raw", "nbd://127.0.0.1:" + port + "/vm1",
                "-c", "write -P 0x55 0 64k");
            assertThat(plain.exit()).as("a plaintext client is refused: " + plain.describe()).isNotZero();
            assertThat(plain.output()).containsIgnoringCase("TLS");

            final NbdTestSupport.ToolResult foreign = run(60, "qemu-io",
                "--object", "tls-creds-x509,id=tls0,endpoint=client,dir=" + rogueDir,
                "--image-opts", export + ",tls-creds=tls0", "-c", "write -P 0x55 0 64k");
            assertThat(foreign.exit()).as("a certificate from another CA is refused: " + foreign.describe()).isNotZero();

            Thread.sleep(500);
            assertThat(MixedImage.hash(cluster.alphaImage)).as("the refused clients wrote nothing").isEqualTo(primaryHash);
            final String log = Files.readString(dir.resolve("alpha.log"));
            assertThat(log).as("the daemon says why; the foreign client said: " + foreign.output()).contains("in plaintext refused: TLS is required")
                .contains("TLS handshake failed");
        }
    }

    /** A directory as QEMU's tls-creds-x509 reads it: ca-cert.pem, client-cert.pem, client-key.pem. */
    private Path qemuCredentials(final String name, final Path caCert, final Path[] client) throws Exception
    {
        final Path d = Files.createDirectories(dir.resolve(name));
        Files.copy(caCert, d.resolve("ca-cert.pem"));
        Files.copy(client[0], d.resolve("client-cert.pem"));
        Files.copy(client[1], d.resolve("client-key.pem"));
        return d;
    }
}
