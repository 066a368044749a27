// conch/net.hpp
// The sockets layer: addresses, stream sockets and servers, UDP, framing.
#pragma once

#include "conch/net/address.hpp"
#include "conch/net/framing.hpp"
#include "conch/net/ipc.hpp"
#include "conch/net/ipcio.hpp"
#include "conch/net/nats.hpp"
#include "conch/net/socket.hpp"
#include "conch/net/tls.hpp"
#include "conch/net/udp.hpp"
