package io.doppel.replication;

import io.doppel.tools.LoopbackPorts;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes the TOML files of a two-node (alpha primary, beta standby) loopback setup for tests. Public for
 * the NBD tests in {@code io.doppel.nbd}.
 */
public final class TestCluster
{
    public final Path dir;
    public final long size;
    public final int alphaListen;
    public final int alphaAdmin;
    public final int betaListen;
    public final int betaAdmin;
    /** Where the images live (a test may move one, e.g. onto a small file system). */
    public Path alphaImage;
    public Path betaImage;
    String compression = "lz4";
    String blockSize = "4KiB";
    String logSize = "64MiB";
    long betaSize;
    /** When set, the {@code nbd} address of vm1 on alpha ("127.0.0.1:PORT" or "unix:/path"). */
    public String alphaNbd;
    /** When set, the {@code nbd} address of vm1 on beta (its read-only standby export). */
    public String betaNbd;
    /** Roles of vm1 (a split-brain test makes both primary). */
    public String alphaRole = "primary";
    public String betaRole = "standby";
    /** Where alpha connects to beta: beta's listen port, or a proxy in between. */
    public int alphaPeerPort;
    /** vm1's {@code ack} level (null: the default). */
    public String ack;
    /** vm1's {@code after-split-brain} policy (null: the default). */
    public String afterSplitBrain;

    /** Raw TOML lines added to each node's [node] table and [[peer]] entry (link security keys). */
    public String alphaNodeExtra = "";
    public String betaNodeExtra = "";
    public String alphaPeerExtra = "";
    public String betaPeerExtra = "";

    /** Raw TOML lines inside alpha's [[volume]] table (watch mode keys, say). */
    public String alphaVolumeExtra = "";

    /** Raw TOML appended to alpha's file (whole tables, such as [limits]). */
    public String alphaExtra = "";

    public TestCluster(final Path dir, final long size) throws IOException
    {
        this.dir = dir;
        this.size = size;
        this.betaSize = size;
        final int[] ports = LoopbackPorts.free(4);
        alphaListen = ports[0];
        alphaAdmin = ports[1];
        betaListen = ports[2];
        betaAdmin = ports[3];
        alphaPeerPort = betaListen;
        Files.createDirectories(dir.resolve("alpha"));
        Files.createDirectories(dir.resolve("beta"));
        alphaImage = dir.resolve("alpha/vm1.img");
        betaImage = dir.resolve("beta/vm1.img");
    }

    public Path alphaConfig() throws IOException
    {
        return write("alpha", alphaListen, alphaAdmin, "beta", alphaPeerPort, alphaImage, alphaRole, size, alphaNbd);
    }

    public Path betaConfig() throws IOException
    {
        return write("beta", betaListen, betaAdmin, "alpha", alphaListen, betaImage, betaRole, betaSize, betaNbd);
    }

    private Path write(final String node, final int listen, final int admin, final String peer, final int peerPort,
        final Path image, final String role, final long volumeSize, final String nbd) throws IOException
    {
        final String toml = String.join("\n",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"",
            "data-dir = \"" + dir.resolve(node) + "\"",
            "heartbeat-interval = \"500ms\"",
            "heartbeat-timeout = \"5s\"",
            node.equals("alpha") ? alphaNodeExtra : betaNodeExtra,
            "",
            "[[peer]]",
            "name = \"" + peer + "\"",
            "address = \"127.0.0.1:" + peerPort + "\"",
            node.equals("alpha") ? alphaPeerExtra : betaPeerExtra,
            "",
            "[[volume]]",
            "name = \"vm1\"",
            "path = \"" + image + "\"",
            "size = " + volumeSize,
            "role = \"" + role + "\"",
            "peer = \"" + peer + "\"",
            "block-size = \"" + blockSize + "\"",
            "compression = \"" + compression + "\"",
            "replication-log-size = \"" + logSize + "\"",
            ack == null ? "" : "ack = \"" + ack + "\"",
            afterSplitBrain == null ? "" : "after-split-brain = \"" + afterSplitBrain + "\"",
            node.equals("alpha") ? alphaVolumeExtra : "",
            nbd == null ? "" : "nbd = \"" + nbd + "\"\n",
            node.equals("alpha") ? alphaExtra : "");
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, toml);
        return file;
    }
}
