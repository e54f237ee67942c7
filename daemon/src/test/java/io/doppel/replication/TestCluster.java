package io.doppel.replication;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes the TOML files of a two-node (alpha primary, beta standby) loopback setup for tests. */
final class TestCluster
{
    final Path dir;
    final long size;
    final int alphaListen;
    final int alphaAdmin;
    final int betaListen;
    final int betaAdmin;
    final Path alphaImage;
    final Path betaImage;
    String compression = "lz4";
    String blockSize = "4KiB";
    String logSize = "64MiB";
    long betaSize;

    TestCluster(final Path dir, final long size) throws IOException
    {
        this.dir = dir;
        this.size = size;
        this.betaSize = size;
        final int[] ports = freePorts(4);
        alphaListen = ports[0];
        alphaAdmin = ports[1];
        betaListen = ports[2];
        betaAdmin = ports[3];
        Files.createDirectories(dir.resolve("alpha"));
        Files.createDirectories(dir.resolve("beta"));
        alphaImage = dir.resolve("alpha/vm1.img");
        betaImage = dir.resolve("beta/vm1.img");
    }

    Path alphaConfig() throws IOException
    {
        return write("alpha", alphaListen, alphaAdmin, "beta", betaListen, alphaImage, "primary", size);
    }

    Path betaConfig() throws IOException
    {
        return write("beta", betaListen, betaAdmin, "alpha", alphaListen, betaImage, "standby", betaSize);
    }

    private Path write(final String node, final int listen, final int admin, final String peer, final int peerPort,
        final Path image, final String role, final long volumeSize) throws IOException
    {
        final String toml = String.join("\n",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"",
            "data-dir = \"" + dir.resolve(node) + "\"",
            "heartbeat-interval = \"500ms\"",
            "heartbeat-timeout = \"5s\"",
            "",
            "[[peer]]",
            "name = \"" + peer + "\"",
            "address = \"127.0.0.1:" + peerPort + "\"",
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
            "");
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, toml);
        return file;
    }

    static int[] freePorts(final int n) throws IOException
    {
        final int[] ports = new int[n];
        final ServerSocket[] sockets = new ServerSocket[n];
        try
        {
            for (int i = 0; i < n; i++)
            {
                sockets[i] = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                ports[i] = sockets[i].getLocalPort();
            }
        }
        finally
        {
            for (final ServerSocket s : sockets)
            {
                if (s != null)
                {
                    s.close();
                }
            }
        }
        return ports;
    }
}
