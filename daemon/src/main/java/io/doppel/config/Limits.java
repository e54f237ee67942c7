package io.doppel.config;

/**
 * The {@code [limits]} table: how much any one client or peer may make this daemon hold or do. Every bound
 * keeps memory and threads finite whatever a client sends; each is counted in the metrics when it is hit,
 * so an operator can tell a limit that is too tight from a misbehaving client. They apply live (a reload
 * changes them for new connections).
 *
 * @param nbdClients        open NBD connections on this node, all exports together
 * @param peerLinks         open incoming peer links on this node
 * @param connectionRate    new connections accepted per second on each kind of listener (NBD, peer)
 * @param nbdRequestBytes   the largest NBD request payload, advertised to clients as the maximum block size;
 *                          with the one read buffer a connection holds, it bounds the bytes in flight per client
 * @param peerInFlightBytes bytes of frames a standby reads ahead of its apply thread, per peer link
 */
public record Limits(int nbdClients, int peerLinks, int connectionRate, int nbdRequestBytes, long peerInFlightBytes)
{
    public static final int DEFAULT_NBD_CLIENTS = 64;
    public static final int DEFAULT_PEER_LINKS = 64;
    public static final int DEFAULT_CONNECTION_RATE = 100;
    public static final String DEFAULT_NBD_REQUEST = "32MiB";
    public static final String DEFAULT_PEER_IN_FLIGHT = "8MiB";

    public static final int MIN_NBD_REQUEST = 64 << 10;
    public static final int MAX_NBD_REQUEST = 32 << 20;
    /** At least two of the largest frames, so a frame never waits for the apply thread to make room. */
    public static final long MIN_PEER_IN_FLIGHT = 2L << 20;
    public static final long MAX_PEER_IN_FLIGHT = 1L << 30;

    public static Limits defaults()
    {
        return new Limits(DEFAULT_NBD_CLIENTS, DEFAULT_PEER_LINKS, DEFAULT_CONNECTION_RATE, 32 << 20, 8L << 20);
    }
}
