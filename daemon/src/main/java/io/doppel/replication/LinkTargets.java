package io.doppel.replication;

/** What an incoming peer link may attach to: this node's volumes by name. */
public interface LinkTargets
{
    /** The standby volume of that name, or null. */
    StandbyVolume standby(String name);

    /** The two-way volume's link of that name, or null. */
    default TwoWayLink twoWay(final String name)
    {
        return null;
    }

    /**
     * The standby volume a primary's handshake names, or null. A node may create it here (a member of a
     * volume group, sized from the handshake); by default only volumes it has are found.
     */
    default StandbyVolume standbyFor(final io.doppel.net.Hello hello)
    {
        return standby(hello.volume());
    }

    /** True when the volume exists here as primary (so a primary's link to it is a role conflict). */
    boolean isPrimaryHere(String name);

    /** This node's volumes and roles, for error messages. */
    String describe();
}
