package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.daemon.ReloadResult;
import io.doppel.log.Log;
import io.doppel.net.Hello;
import io.doppel.net.LinkSecurity;
import io.doppel.net.TestCerts;
import io.doppel.net.WireProtocol;
import io.doppel.tools.MixedImage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32C;

import static io.doppel.replication.StreamingReplicationTest.assertIdentical;
import static io.doppel.replication.StreamingReplicationTest.awaitInSync;
import static io.doppel.replication.StreamingReplicationTest.awaitTrue;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Secured peer links between two nodes over real loopback sockets, with keys and certificates made by the real
 * openssl: a pair replicates over mutual TLS, over a pre-shared key and over pinned self-signed certificates;
 * a wrong key, a certificate of an unknown CA, a wrong pin and a plaintext client on the TLS port are refused
 * before any volume frame, with nothing written on the standby, a log line on each side and a count by reason;
 * a reload that changes the link's keys is refused.
 */
class LinkSecurityTest
{
    private static final long SIZE = 16L << 20;

    @TempDir
    Path dir;

    private TestCluster cluster;
    private TestCerts certs;
    private final ByteArrayOutputStream logged = new ByteArrayOutputStream();
    private PrintStream logBefore;

    @BeforeEach
    void setUp() throws Exception
    {
        cluster = new TestCluster(dir, SIZE);
        certs = new TestCerts(dir.resolve("keys"));
        MixedImage.create(cluster.alphaImage, SIZE, 71);
        MixedImage.create(cluster.betaImage, SIZE, 72); // different: a refused link must leave it as it is
        final PrintStream console = System.err;
        logBefore = Log.output(new PrintStream(new OutputStream()
        {
            @Override
            public synchronized void write(final int b)
            {
                logged.write(b);
                console.write(b);
            }

            @Override
            public synchronized void write(final byte[] b, final int off, final int len)
            {
                logged.write(b, off, len);
                console.write(b, off, len);
            }
        }, true, StandardCharsets.UTF_8));
    }

    @AfterEach
    void restoreLog()
    {
        Log.output(logBefore);
    }

    private String log()
    {
        synchronized (logged)
        {
            return logged.toString(StandardCharsets.UTF_8);
        }
    }

    private void tls(final String alphaCa, final String betaCa) throws Exception
    {
        final Path[] a = certs.node("alpha", alphaCa, "alpha");
        final Path[] b = certs.node("beta", betaCa, "beta");
        cluster.alphaNodeExtra = tlsKeys(a, certs, "ca");
        cluster.betaNodeExtra = tlsKeys(b, certs, "ca");
    }

    private String tlsKeys(final Path[] certAndKey, final TestCerts c, final String ca)
    {
        return "tls-cert = \"" + certAndKey[0] + "\"\ntls-key = \"" + certAndKey[1] + "\"\ntls-ca = \""
            + dir.resolve("keys").resolve(ca + ".pem") + "\"";
    }

    @Test
    void pairReplicatesOverMutualTls() throws Exception
    {
        TestCerts.assumeOpenssl();
        certs.ca("ca");
        tls("ca", "ca");
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            vm1.write(4096 * 7, java.nio.ByteBuffer.wrap(new byte[] {1, 2, 3, 4, 5}));
            awaitInSync(vm1, 30);
            assertIdentical(cluster, alpha, beta);
            assertThat(log()).contains("mutual TLS");
            for (final String reason : LinkSecurity.REASONS)
            {
                assertThat(alpha.linkSecurity().failures(reason) + beta.linkSecurity().failures(reason))
                    .as("failures: " + reason).isZero();
            }
        }
    }

    @Test
    void pairReplicatesOverPskAndAReloadMayNotChangeTheKey() throws Exception
    {
        TestCerts.assumeOpenssl();
        final Path psk = certs.psk("psk");
        cluster.alphaPeerExtra = "psk-file = \"" + psk + "\"";
        cluster.betaPeerExtra = "psk-file = \"" + psk + "\"";
        final Path alphaFile = cluster.alphaConfig();
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaFile), alphaFile))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            assertIdentical(cluster, alpha, beta);
            assertThat(log()).contains("protocol v4");

            final Path other = certs.psk("psk2");
            Files.writeString(alphaFile, Files.readString(alphaFile).replace(psk.toString(), other.toString()));
            final ReloadResult r = alpha.reloadFromFile();
            assertThat(r.accepted()).isFalse();
            assertThat(r.refused()).singleElement().asString().contains("[[peer]] beta: psk-file").contains(
                "restart the daemon").doesNotContain(Files.readString(psk).trim());
        }
    }

    @Test
    void wrongPreSharedKeyIsRefusedAndNothingIsWritten() throws Exception
    {
        TestCerts.assumeOpenssl();
        cluster.alphaPeerExtra = "psk-file = \"" + certs.psk("alpha-psk") + "\"";
        cluster.betaPeerExtra = "psk-file = \"" + certs.psk("beta-psk") + "\"";
        assertRefused("psk", "psk", "wrong key");
    }

    @Test
    void plaintextHelloToAPskPeerIsRefused() throws Exception
    {
        TestCerts.assumeOpenssl();
        cluster.betaPeerExtra = "psk-file = \"" + certs.psk("beta-psk") + "\"";
        assertRefused("refused-by-peer", "missing-auth", "skipped the pre-shared-key challenge");
    }

    @Test
    void certificateOfAnUnknownCaIsRefused() throws Exception
    {
        TestCerts.assumeOpenssl();
        certs.ca("ca");
        certs.ca("rogue");
        tls("rogue", "ca");
        assertRefused("refused-by-peer", "certificate", "not trusted by [node].tls-ca");
    }

    @Test
    void pinnedFingerprintMismatchIsRefusedAndAMatchingPinConnects() throws Exception
    {
        TestCerts.assumeOpenssl();
        final Path[] a = certs.selfSigned("alpha", "alpha");
        final Path[] b = certs.selfSigned("beta", "beta");
        final Path[] impostor = certs.selfSigned("beta", "beta-other");
        cluster.alphaNodeExtra = "tls-cert = \"" + a[0] + "\"\ntls-key = \"" + a[1] + "\"";
        cluster.betaNodeExtra = "tls-cert = \"" + b[0] + "\"\ntls-key = \"" + b[1] + "\"";
        // alpha pins another certificate that also says CN=beta; beta pins alpha's real one
        cluster.alphaPeerExtra = "tls-fingerprint = \"" + certs.fingerprint(impostor[0]) + "\"";
        cluster.betaPeerExtra = "tls-fingerprint = \"" + certs.fingerprint(a[0]).replace(":", "") + "\"";
        assertRefused("fingerprint", "refused-by-peer", "tls-fingerprint pins");

        cluster.alphaPeerExtra = "tls-fingerprint = \"" + certs.fingerprint(b[0]) + "\"";
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitInSync(alpha.primary("vm1"), 60);
            assertIdentical(cluster, alpha, beta);
        }
    }

    @Test
    void plaintextClientOnTheTlsPortIsRefused() throws Exception
    {
        TestCerts.assumeOpenssl();
        certs.ca("ca");
        tls("ca", "ca");
        final String before = MixedImage.hash(cluster.betaImage);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             Socket s = new Socket(InetAddress.getLoopbackAddress(), cluster.betaListen))
        {
            s.setSoTimeout(10_000);
            final ByteBuf buf = Unpooled.buffer();
            Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, 4096, "alpha", "beta", "vm1").encode(buf,
                WireProtocol.TYPE_HELLO, new CRC32C());
            final byte[] bytes = new byte[buf.readableBytes()];
            buf.readBytes(bytes);
            s.getOutputStream().write(bytes);
            final InputStream in = s.getInputStream();
            int got;
            try
            {
                while ((got = in.read()) >= 0)
                {
                    // a TLS alert may come before the close; no doppel frame can
                    assertThat(got).as("no plaintext HELLO_OK").isNotEqualTo(WireProtocol.TYPE_HELLO_OK);
                }
            }
            catch (final SocketException reset)
            {
                // closed with a reset: refused just the same
            }
            awaitTrue(() -> beta.linkSecurity().failures("plaintext") > 0, 10);
            assertThat(TestCerts.lines(log(), "beta/peers", "refused a peer link from", "(plaintext)",
                "sent plaintext to a TLS port")).isNotEmpty();
            beta.standby("vm1").volume().flush();
        }
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(before);
    }

    @Test
    void aReplayedProofIsRefused() throws Exception
    {
        TestCerts.assumeOpenssl();
        final Path psk = certs.psk("psk");
        cluster.betaPeerExtra = "psk-file = \"" + psk + "\"";
        final byte[] key = Files.readString(psk).trim().getBytes(StandardCharsets.UTF_8);
        final String before = MixedImage.hash(cluster.betaImage);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig())))
        {
            final byte[] clientNonce = io.doppel.net.PskAuth.nonce();
            final byte[] recorded;
            try (Socket s = new Socket(InetAddress.getLoopbackAddress(), cluster.betaListen))
            {
                // an honest exchange, as an eavesdropper would record it
                s.setSoTimeout(10_000);
                final io.doppel.net.PskAuth.Reply reply = begin(s, clientNonce);
                assertThat(io.doppel.net.PskAuth.matches(io.doppel.net.PskAuth.proof(key,
                    io.doppel.net.PskAuth.SERVER_LABEL, "alpha", "beta", clientNonce, reply.serverNonce()),
                    reply.serverProof())).as("beta proves the key").isTrue();
                recorded = io.doppel.net.PskAuth.proof(key, io.doppel.net.PskAuth.CLIENT_LABEL, "alpha", "beta",
                    clientNonce, reply.serverNonce());
            }
            assertThat(beta.linkSecurity().failures("psk")).isZero();
            try (Socket s = new Socket(InetAddress.getLoopbackAddress(), cluster.betaListen))
            {
                // the same AUTH_BEGIN and the recorded proof: beta's nonce is new, so the proof is stale
                s.setSoTimeout(10_000);
                final io.doppel.net.PskAuth.Reply reply = begin(s, clientNonce);
                send(s, b -> io.doppel.net.PskAuth.encodeProof(b, recorded, new CRC32C()));
                final ByteBuf answer = readFrame(s.getInputStream());
                assertThat(WireProtocol.readType(answer)).isEqualTo(WireProtocol.TYPE_REJECT);
                assertThat(Hello.rejectCode(answer)).isEqualTo(WireProtocol.REJECT_AUTH);
                assertThat(Hello.decodeReject(answer)).contains("wrong key");
                assertThat(reply.serverNonce()).isNotEqualTo(clientNonce);
            }
            awaitTrue(() -> beta.linkSecurity().failures("psk") == 1, 10);
            assertThat(TestCerts.lines(log(), "beta/peers", "(psk)", "failed the pre-shared-key challenge"))
                .hasSize(1);
            beta.standby("vm1").volume().flush();
        }
        assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(before);
    }

    private static io.doppel.net.PskAuth.Reply begin(final Socket s, final byte[] clientNonce) throws Exception
    {
        send(s, b -> io.doppel.net.PskAuth.encodeBegin(b, clientNonce, "alpha", "beta", new CRC32C()));
        ByteBuf frame;
        int type;
        do
        {
            frame = readFrame(s.getInputStream());
            type = WireProtocol.readType(frame);
        }
        while (type == WireProtocol.TYPE_PING);
        assertThat(type).isEqualTo(WireProtocol.TYPE_AUTH_REPLY);
        return io.doppel.net.PskAuth.decodeReply(frame);
    }

    private static void send(final Socket s, final java.util.function.Consumer<ByteBuf> encoder) throws Exception
    {
        final ByteBuf buf = Unpooled.buffer();
        encoder.accept(buf);
        final byte[] bytes = new byte[buf.readableBytes()];
        buf.readBytes(bytes);
        s.getOutputStream().write(bytes);
    }

    /** One frame off a raw socket, reader index on its type byte. */
    private static ByteBuf readFrame(final InputStream in) throws Exception
    {
        final java.io.DataInputStream data = new java.io.DataInputStream(in);
        final int length = data.readInt();
        final byte[] rest = new byte[length];
        data.readFully(rest);
        return Unpooled.wrappedBuffer(rest).skipBytes(WireProtocol.CHECKSUM_BYTES);
    }

    private static String metrics(final int adminPort) throws Exception
    {
        final java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
            java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + adminPort + "/metrics"))
                .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        return r.body();
    }

    /**
     * Starts the pair as configured and expects the link refused: each side counts its reason and logs a line
     * saying why, the standby's image is unchanged, and the volume never connected.
     */
    private void assertRefused(final String alphaReason, final String betaReason, final String why) throws Exception
    {
        final String before = MixedImage.hash(cluster.betaImage);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitTrue(() -> alpha.linkSecurity().failures(alphaReason) > 0
                && beta.linkSecurity().failures(betaReason) > 0, 20, () -> "failures alpha " + alphaReason + "="
                + alpha.linkSecurity().failures(alphaReason) + ", beta " + betaReason + "="
                + beta.linkSecurity().failures(betaReason) + "; alpha's last error: "
                + alpha.primary("vm1").state().lastError());
            assertThat(alpha.primary("vm1").state().connects()).as("never connected").isZero();
            assertThat(alpha.primary("vm1").state().blocksSent()).as("no block sent").isZero();
            // the failure is counted before its line is written: wait for both lines
            awaitTrue(() -> !TestCerts.lines(log(), "beta/peers", "refused a peer link from", "(" + betaReason + ")")
                .isEmpty() && !TestCerts.lines(log(), "alpha/vm1", "peer beta at 127.0.0.1:" + cluster.betaListen)
                .isEmpty(), 10, () -> "log lines of both sides");
            final String log = log();
            assertThat(TestCerts.lines(log, "beta/peers", "refused a peer link from", "(" + betaReason + ")"))
                .as("beta's log line").isNotEmpty();
            assertThat(TestCerts.lines(log, "alpha/vm1", "peer beta at 127.0.0.1:" + cluster.betaListen))
                .as("alpha's log line").isNotEmpty();
            assertThat(log).contains(why);
            assertThat(metrics(cluster.betaAdmin)).as("/metrics of beta").containsPattern(
                "doppel_link_auth_failures_total\\{[^}]*reason=\"" + betaReason + "\"[^}]*\\} [1-9]");
            beta.standby("vm1").volume().flush();
        }
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(before);
    }
}
