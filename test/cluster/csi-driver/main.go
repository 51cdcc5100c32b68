// A small CSI driver for the test clusters: volumes are directories (or, for raw block volumes,
// files behind loop devices) under a state directory on the node, and snapshots are full copies of
// them. It exists so that the test clusters can take VolumeSnapshots with the upstream snapshot
// machinery (external-provisioner, external-snapshotter, snapshot-controller); it is test
// infrastructure for single-node clusters, not a storage system.
//
// One binary, two roles: `--mode=controller` beside the sidecars (volumes and snapshots), and
// `--mode=node` on every node, where it also registers itself with the kubelet (there is no
// node-driver-registrar here), so the kubelet calls it to mount volumes into pods.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const (
	driverName    = "hostpath.csi.nkvm.local"
	driverVersion = "0.1.0"
)

func main() {
	mode := flag.String("mode", "", "controller or node")
	endpoint := flag.String("endpoint", "", "the CSI socket to serve, unix:///path or /path")
	stateDir := flag.String("state-dir", "/var/lib/nkvm-csi", "where volumes and snapshots live (a hostPath on the node)")
	nodeID := flag.String("node-id", "", "this node's name (node mode)")
	registrationDir := flag.String("registration-dir", "", "the kubelet's plugins_registry directory as this container sees it (node mode)")
	kubeletRegistrationPath := flag.String("kubelet-registration-path", "", "the CSI socket's path as the kubelet sees it on the host (node mode)")
	flag.Parse()

	d := &driver{stateDir: *stateDir, nodeID: *nodeID}
	for _, dir := range []string{d.volumesDir(), d.snapshotsDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Fatalf("creating %s: %v", dir, err)
		}
	}

	server := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(server, d)
	switch *mode {
	case "controller":
		csi.RegisterControllerServer(server, d)
	case "node":
		if *nodeID == "" || *registrationDir == "" || *kubeletRegistrationPath == "" {
			log.Fatal("node mode needs --node-id, --registration-dir and --kubelet-registration-path")
		}
		csi.RegisterNodeServer(server, d)
	default:
		log.Fatalf("--mode must be controller or node, not %q", *mode)
	}
	csiListener, err := listenUnix(strings.TrimPrefix(*endpoint, "unix://"))
	if err != nil {
		log.Fatal(err)
	}
	if *mode == "node" {
		// Registered only once the CSI socket listens: the kubelet calls it as soon as it learns of it.
		go serveRegistration(*registrationDir, *kubeletRegistrationPath)
	}
	log.Printf("%s %s (%s) serving CSI on %s", driverName, driverVersion, *mode, *endpoint)
	log.Fatal(server.Serve(csiListener))
}

// listenUnix removes a socket left by an earlier run (a restarted container finds it in its hostPath).
func listenUnix(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("removing stale socket %s: %w", socket, err)
	}
	return net.Listen("unix", socket)
}

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	// Probe and the capability calls come every few seconds; only what changes state is worth a line.
	if err != nil || !strings.Contains(info.FullMethod, "Get") && !strings.HasSuffix(info.FullMethod, "/Probe") {
		log.Printf("%s %+v -> err=%v", info.FullMethod, req, err)
	}
	return resp, err
}

// The kubelet's plugin watcher finds sockets in plugins_registry and asks each what it is: we
// answer as node-driver-registrar would, with the CSI socket's path on the host.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: driverName, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, status *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if status.PluginRegistered {
		log.Printf("registered with the kubelet")
	} else {
		log.Printf("the kubelet refused the registration: %s", status.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Not <driver name>-reg.sock as node-driver-registrar names it: the kubelet dials this socket by its
// path on the host, which must fit a unix socket address (107 bytes), and the local provider's
// kubelet root is 64 bytes deep under /tmp.
const registrationSocket = "nkvm-csi-reg.sock"

func serveRegistration(registrationDir, kubeletEndpoint string) {
	listener, err := listenUnix(filepath.Join(registrationDir, registrationSocket))
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	registerapi.RegisterRegistrationServer(server, &registration{endpoint: kubeletEndpoint})
	log.Fatal(server.Serve(listener))
}

// Identity.

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: driverName, VendorVersion: driverVersion}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}
