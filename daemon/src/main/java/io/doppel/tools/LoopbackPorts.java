package io.doppel.tools;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;

/** Free TCP ports on loopback, for the demo, tests and benches that start several nodes on one host. */
public final class LoopbackPorts
{
    private LoopbackPorts()
    {
    }

    /** {@code n} distinct ports that were free a moment ago (all held open together while chosen). */
    public static int[] free(final int n) throws IOException
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
