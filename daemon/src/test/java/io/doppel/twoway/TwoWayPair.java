package io.doppel.twoway;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.nbd.NbdTestSupport;
import io.doppel.tools.LinkProxy;
import io.doppel.tools.LoopbackPorts;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Two real daemons (alpha, beta) in this JVM holding volume {@code vm1} in two-way mode, each serving it
 * read-write over NBD on loopback. Alpha dials (its name sorts first) through a {@link LinkProxy} to beta's
 * listen port, so a test can cut and restore the link while both keep taking writes.
 */
final class TwoWayPair implements AutoCloseable
{
    final Path dir;
    final long size;
    final int blockSize;
    final LinkProxy proxy;
    final int alphaNbd;
    final int betaNbd;
    final int alphaAdmin;
    final int betaAdmin;
    final int alphaListen;
    final int betaListen;
    DoppelNode alpha;
    DoppelNode beta;
    /** Extra lines for both nodes' [[peer]] table (for example a psk-file). */
    String peerExtra = "";

    TwoWayPair(final Path dir, final long size, final int blockSize) throws IOException
    {
        this.dir = dir;
        this.size = size;
        this.blockSize = blockSize;
        final int[] ports = LoopbackPorts.free(6);
        alphaListen = ports[0];
        betaListen = ports[1];
        alphaAdmin = ports[2];
        betaAdmin = ports[3];
        alphaNbd = ports[4];
        betaNbd = ports[5];
        proxy = LinkProxy.start(betaListen);
        Files.createDirectories(dir.resolve("alpha"));
        Files.createDirectories(dir.resolve("beta"));
    }

    TwoWayPair start() throws Exception
    {
        beta = startNode("beta");
        alpha = startNode("alpha");
        return this;
    }

    DoppelNode startNode(final String node) throws Exception
    {
        return DoppelNode.start(ConfigLoader.load(config(node)));
    }

    Path image(final String node)
    {
        return dir.resolve(node).resolve("vm1.img");
    }

    Path config(final String node) throws IOException
    {
        final boolean a = node.equals("alpha");
        final String toml = String.join("\n",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + (a ? alphaListen : betaListen) + "\"",
            "admin = \"127.0.0.1:" + (a ? alphaAdmin : betaAdmin) + "\"",
            "data-dir = \"" + dir.resolve(node) + "\"",
            "heartbeat-interval = \"500ms\"",
            "heartbeat-timeout = \"5s\"",
            "",
            "[[peer]]",
            "name = \"" + (a ? "beta" : "alpha") + "\"",
            "address = \"127.0.0.1:" + (a ? proxy.port() : alphaListen) + "\"",
            peerExtra,
            "",
            "[[volume]]",
            "name = \"vm1\"",
            "mode = \"two-way\"",
            "path = \"" + image(node) + "\"",
            "size = " + size,
            "block-size = \"" + blockSize + "\"",
            "nbd = \"127.0.0.1:" + (a ? alphaNbd : betaNbd) + "\"",
            "");
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, toml);
        return file;
    }

    TwoWayVolume a()
    {
        return alpha.twoWay("vm1");
    }

    TwoWayVolume b()
    {
        return beta.twoWay("vm1");
    }

    String nbdUri(final String node)
    {
        return "nbd://127.0.0.1:" + (node.equals("alpha") ? alphaNbd : betaNbd) + "/vm1";
    }

    boolean linked()
    {
        return a().state().connected() && b().state().connected();
    }

    /** Both linked, and neither owes the other a block nor waits for an acknowledgement. */
    boolean converged()
    {
        return linked() && a().nothingOwed() && b().nothingOwed();
    }

    void awaitConverged(final int seconds) throws InterruptedException
    {
        NbdTestSupport.awaitTrue(this::converged, seconds, () -> "never converged: alpha " + describe(a()) + "; beta " + describe(b()));
    }

    void awaitLinked(final int seconds) throws InterruptedException
    {
        NbdTestSupport.awaitTrue(this::linked, seconds, () -> "never linked: alpha " + describe(a()) + "; beta " + describe(b()));
    }

    static String describe(final TwoWayVolume v)
    {
        return v.state().replication() + (v.state().connected() ? " connected" : " not connected") + ", dirty "
            + v.metadata().dirtyMap().dirtyBlocks() + ", in flight " + v.metadata().dirtyMap().inFlightBlocks()
            + ", " + v.status().toMap() + ", last error: " + v.state().lastError();
    }

    /** Block {@code block} of {@code v} as it reads now. */
    static byte[] read(final TwoWayVolume v, final long block, final int blockSize)
    {
        final ByteBuffer b = ByteBuffer.allocate(blockSize);
        v.read(block * blockSize, b);
        return b.array();
    }

    static void write(final TwoWayVolume v, final long block, final byte[] bytes)
    {
        v.write(block * bytes.length, ByteBuffer.allocateDirect(bytes.length).put(bytes).flip());
    }

    @Override
    public void close()
    {
        if (alpha != null)
        {
            alpha.close();
        }
        if (beta != null)
        {
            beta.close();
        }
        proxy.close();
    }
}
