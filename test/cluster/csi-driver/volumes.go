package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Layout of the state directory:
//
//	volumes/<id>        a filesystem volume's files     volumes/<id>.img   a block volume's bytes
//	volumes/<id>.json   what the volume is (volumeMeta)
//	snapshots/<id>      a full copy of a volume          snapshots/<id>.img
//	snapshots/<id>.json what the snapshot is (snapshotMeta)
//
// The .json file is written last and removed first, so it alone says the object exists; data
// without it is what an interrupted call left, and the next call for that name replaces it.
type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	stateDir string
	nodeID   string
	// The sidecars call concurrently; one lock keeps create/delete of the same name consistent.
	mu sync.Mutex
}

type volumeMeta struct {
	Name          string `json:"name"`
	CapacityBytes int64  `json:"capacityBytes"`
	Block         bool   `json:"block"`
}

type snapshotMeta struct {
	Name           string `json:"name"`
	SourceVolumeID string `json:"sourceVolumeId"`
	SizeBytes      int64  `json:"sizeBytes"`
	Block          bool   `json:"block"`
	CreatedUnixNs  int64  `json:"createdUnixNs"`
}

// A new volume without a requested size: small, since the files are on the node's disk.
const defaultCapacityBytes = 64 << 20

func (d *driver) volumesDir() string   { return filepath.Join(d.stateDir, "volumes") }
func (d *driver) snapshotsDir() string { return filepath.Join(d.stateDir, "snapshots") }

// IDs derive from the names the sidecars give (pvc-<uid>, snapshot-<uid>), so a retried create
// finds what the first attempt made.
func idFor(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:10])
}

// dataPath is where an object's bytes live: a directory, or a file for block volumes.
func dataPath(dir, id string, block bool) string {
	if block {
		return filepath.Join(dir, id+".img")
	}
	return filepath.Join(dir, id)
}

// IDs come from the CO: refuse anything that could leave the state directory.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/\\") && id != "." && id != ".."
}

func readJSON[T any](file string) (*T, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var value T
	if err := json.Unmarshal(data, &value); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &value, nil
}

func writeJSON(file string, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func (d *driver) volume(id string) (*volumeMeta, error) {
	if !validID(id) {
		return nil, status.Errorf(codes.NotFound, "no volume %q", id)
	}
	meta, err := readJSON[volumeMeta](filepath.Join(d.volumesDir(), id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "no volume %q", id)
	}
	return meta, err
}

func (d *driver) snapshot(id string) (*snapshotMeta, error) {
	if !validID(id) {
		return nil, status.Errorf(codes.NotFound, "no snapshot %q", id)
	}
	meta, err := readJSON[snapshotMeta](filepath.Join(d.snapshotsDir(), id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "no snapshot %q", id)
	}
	return meta, err
}

func wantsBlock(caps []*csi.VolumeCapability) (bool, error) {
	block, mount := false, false
	for _, c := range caps {
		switch c.GetAccessType().(type) {
		case *csi.VolumeCapability_Block:
			block = true
		case *csi.VolumeCapability_Mount:
			mount = true
		}
	}
	if block && mount {
		return false, status.Error(codes.InvalidArgument, "a volume is either block or mount, not both")
	}
	return block, nil
}

// Controller.

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.Name == "" || len(req.VolumeCapabilities) == 0 {
		return nil, status.Error(codes.InvalidArgument, "name and volume capabilities are required")
	}
	block, err := wantsBlock(req.VolumeCapabilities)
	if err != nil {
		return nil, err
	}
	capacity := req.GetCapacityRange().GetRequiredBytes()
	if capacity == 0 {
		capacity = defaultCapacityBytes
	}
	if limit := req.GetCapacityRange().GetLimitBytes(); limit > 0 && capacity > limit {
		return nil, status.Errorf(codes.OutOfRange, "required %d bytes exceeds the limit of %d", capacity, limit)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	id := idFor("vol-", req.Name)
	response := &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: id, CapacityBytes: capacity, ContentSource: req.VolumeContentSource}}
	if existing, err := d.volume(id); err == nil {
		if existing.Block != block || existing.CapacityBytes < capacity {
			return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with other parameters", req.Name)
		}
		response.Volume.CapacityBytes = existing.CapacityBytes
		return response, nil
	}

	target := dataPath(d.volumesDir(), id, block)
	if err := os.RemoveAll(target); err != nil {
		return nil, status.Errorf(codes.Internal, "clearing %s: %v", target, err)
	}
	switch {
	case req.GetVolumeContentSource().GetSnapshot() != nil:
		snapID := req.VolumeContentSource.GetSnapshot().SnapshotId
		snap, err := d.snapshot(snapID)
		if err != nil {
			return nil, err
		}
		if err := checkSource(snap.Block, snap.SizeBytes, block, capacity); err != nil {
			return nil, err
		}
		err = copyInto(dataPath(d.snapshotsDir(), snapID, block), target, block)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "restoring snapshot %s: %v", snapID, err)
		}
	case req.GetVolumeContentSource().GetVolume() != nil:
		srcID := req.VolumeContentSource.GetVolume().VolumeId
		src, err := d.volume(srcID)
		if err != nil {
			return nil, err
		}
		if err := checkSource(src.Block, src.CapacityBytes, block, capacity); err != nil {
			return nil, err
		}
		if err := copyInto(dataPath(d.volumesDir(), srcID, block), target, block); err != nil {
			return nil, status.Errorf(codes.Internal, "cloning volume %s: %v", srcID, err)
		}
	case block:
		f, err := os.Create(target)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "creating %s: %v", target, err)
		}
		f.Close()
	default:
		// 0777, as local-path does: a pod running as any user can write without an fsGroup.
		if err := os.Mkdir(target, 0o777); err != nil {
			return nil, status.Errorf(codes.Internal, "creating %s: %v", target, err)
		}
		if err := os.Chmod(target, 0o777); err != nil { // past the umask
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
	}
	if block {
		// Sparse: the file takes disk space only where the pod writes.
		if err := os.Truncate(target, capacity); err != nil {
			return nil, status.Errorf(codes.Internal, "sizing %s: %v", target, err)
		}
	}
	if err := writeJSON(filepath.Join(d.volumesDir(), id+".json"), volumeMeta{Name: req.Name, CapacityBytes: capacity, Block: block}); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return response, nil
}

func checkSource(sourceBlock bool, sourceBytes int64, block bool, capacity int64) error {
	if sourceBlock != block {
		return status.Error(codes.InvalidArgument, "the source and the new volume must both be block or both be filesystem")
	}
	if sourceBytes > capacity {
		return status.Errorf(codes.OutOfRange, "the source holds %d bytes, more than the %d requested", sourceBytes, capacity)
	}
	return nil
}

// copyInto copies a volume's or a snapshot's data through a temporary name, so the target
// appears whole or not at all.
func copyInto(src, dst string, block bool) error {
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	var err error
	if block {
		err = copySparseFile(src, tmp)
	} else {
		err = copyTree(src, tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if !validID(req.VolumeId) {
		return nil, status.Error(codes.InvalidArgument, "a volume id is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	base := filepath.Join(d.volumesDir(), req.VolumeId)
	for _, path := range []string{base + ".json", base, base + ".img"} {
		if err := os.RemoveAll(path); err != nil {
			return nil, status.Errorf(codes.Internal, "removing %s: %v", path, err)
		}
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if len(req.VolumeCapabilities) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	meta, err := d.volume(req.VolumeId)
	if err != nil {
		return nil, err
	}
	block, err := wantsBlock(req.VolumeCapabilities)
	if err != nil || block != meta.Block {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: "the volume's access type differs"}, nil
	}
	// Every access mode holds on a single node.
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.VolumeContext, VolumeCapabilities: req.VolumeCapabilities, Parameters: req.Parameters,
	}}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.Name == "" || req.SourceVolumeId == "" {
		return nil, status.Error(codes.InvalidArgument, "name and source volume id are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := idFor("snap-", req.Name)
	if existing, err := d.snapshot(id); err == nil {
		if existing.SourceVolumeID != req.SourceVolumeId {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists of another volume", req.Name)
		}
		return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(id, existing)}, nil
	}
	source, err := d.volume(req.SourceVolumeId)
	if err != nil {
		return nil, err
	}
	// A copy while the pod may still write: crash-consistent at best, as with any snapshot taken
	// without freezing the application.
	target := dataPath(d.snapshotsDir(), id, source.Block)
	if err := copyInto(dataPath(d.volumesDir(), req.SourceVolumeId, source.Block), target, source.Block); err != nil {
		return nil, status.Errorf(codes.Internal, "copying volume %s: %v", req.SourceVolumeId, err)
	}
	meta := snapshotMeta{Name: req.Name, SourceVolumeID: req.SourceVolumeId, SizeBytes: source.CapacityBytes, Block: source.Block, CreatedUnixNs: time.Now().UnixNano()}
	if err := writeJSON(filepath.Join(d.snapshotsDir(), id+".json"), meta); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &csi.CreateSnapshotResponse{Snapshot: snapshotInfo(id, &meta)}, nil
}

func snapshotInfo(id string, meta *snapshotMeta) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     id,
		SourceVolumeId: meta.SourceVolumeID,
		SizeBytes:      meta.SizeBytes,
		CreationTime:   timestamppb.New(time.Unix(0, meta.CreatedUnixNs)),
		ReadyToUse:     true, // the copy is complete when CreateSnapshot returns
	}
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if !validID(req.SnapshotId) {
		return nil, status.Error(codes.InvalidArgument, "a snapshot id is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	base := filepath.Join(d.snapshotsDir(), req.SnapshotId)
	for _, path := range []string{base + ".json", base, base + ".img"} {
		if err := os.RemoveAll(path); err != nil {
			return nil, status.Errorf(codes.Internal, "removing %s: %v", path, err)
		}
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (d *driver) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	var ids []string
	if req.SnapshotId != "" {
		ids = []string{req.SnapshotId}
	} else {
		files, err := filepath.Glob(filepath.Join(d.snapshotsDir(), "*.json"))
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		for _, file := range files {
			ids = append(ids, strings.TrimSuffix(filepath.Base(file), ".json"))
		}
		sort.Strings(ids)
	}
	var entries []*csi.ListSnapshotsResponse_Entry
	for _, id := range ids {
		meta, err := d.snapshot(id)
		if status.Code(err) == codes.NotFound {
			continue // asked for one that is gone: an empty list, as the spec says
		}
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		if req.SourceVolumeId != "" && meta.SourceVolumeID != req.SourceVolumeId {
			continue
		}
		entries = append(entries, &csi.ListSnapshotsResponse_Entry{Snapshot: snapshotInfo(id, meta)})
	}
	// Paging: the token is the index of the next entry.
	start := 0
	if req.StartingToken != "" {
		n, err := strconv.Atoi(req.StartingToken)
		if err != nil || n < 0 || n > len(entries) {
			return nil, status.Errorf(codes.Aborted, "bad starting token %q", req.StartingToken)
		}
		start = n
	}
	entries = entries[start:]
	next := ""
	if req.MaxEntries > 0 && int(req.MaxEntries) < len(entries) {
		entries = entries[:req.MaxEntries]
		next = strconv.Itoa(start + int(req.MaxEntries))
	}
	return &csi.ListSnapshotsResponse{Entries: entries, NextToken: next}, nil
}

// Node.

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

// No capabilities: no staging, so the kubelet calls only NodePublish and NodeUnpublish.
func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if req.TargetPath == "" || req.VolumeCapability == nil {
		return nil, status.Error(codes.InvalidArgument, "target path and volume capability are required")
	}
	meta, err := d.volume(req.VolumeId)
	if err != nil {
		return nil, err
	}
	if mounted, err := isMountPoint(req.TargetPath); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	} else if mounted {
		return &csi.NodePublishVolumeResponse{}, nil // published by an earlier call
	}
	var source string
	if meta.Block {
		if source, err = attachLoopDevice(dataPath(d.volumesDir(), req.VolumeId, true)); err != nil {
			return nil, status.Errorf(codes.Internal, "attaching a loop device: %v", err)
		}
		// The target of a block volume is a file the device node is bound on.
		if err := os.MkdirAll(filepath.Dir(req.TargetPath), 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		f, err := os.OpenFile(req.TargetPath, os.O_CREATE|os.O_RDONLY, 0o640)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		f.Close()
	} else {
		source = dataPath(d.volumesDir(), req.VolumeId, false)
		if err := os.MkdirAll(req.TargetPath, 0o750); err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
	}
	if err := unix.Mount(source, req.TargetPath, "", unix.MS_BIND, ""); err != nil {
		if meta.Block {
			detachLoopDevice(source)
		}
		return nil, status.Errorf(codes.Internal, "bind-mounting %s on %s: %v", source, req.TargetPath, err)
	}
	if req.Readonly {
		// A bind mount takes MS_RDONLY only on a remount.
		if err := unix.Mount("", req.TargetPath, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			unix.Unmount(req.TargetPath, 0)
			return nil, status.Errorf(codes.Internal, "remounting %s read-only: %v", req.TargetPath, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.VolumeId == "" || req.TargetPath == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and target path are required")
	}
	mounted, err := isMountPoint(req.TargetPath)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if mounted {
		// A block volume's target is its loop device's node: note which before it is unbound.
		var st unix.Stat_t
		loopDevice := ""
		if unix.Stat(req.TargetPath, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && unix.Major(st.Rdev) == loopMajor {
			loopDevice = fmt.Sprintf("/dev/loop%d", unix.Minor(st.Rdev))
		}
		if err := unix.Unmount(req.TargetPath, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "unmounting %s: %v", req.TargetPath, err)
		}
		if loopDevice != "" {
			if err := detachLoopDevice(loopDevice); err != nil {
				return nil, status.Errorf(codes.Internal, "detaching %s: %v", loopDevice, err)
			}
		}
	}
	if err := os.Remove(req.TargetPath); err != nil && !os.IsNotExist(err) {
		return nil, status.Errorf(codes.Internal, "removing %s: %v", req.TargetPath, err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// isMountPoint looks the path up in this process's mount table (a bind mount from the same file
// system shares its device number, so comparing with the parent's would not tell).
func isMountPoint(path string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	clean := filepath.Clean(path)
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == clean {
			return true, nil
		}
	}
	return false, nil
}

// mountinfo writes space, tab, newline and backslash as octal escapes.
func unescapeMountinfo(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// Loop devices, for block volumes.

const loopMajor = 7

// attachLoopDevice backs a free loop device with the file and returns the device's path. Not
// autoclear: the device must outlive this call, which closes its only descriptor; it is detached on
// unpublish.
func attachLoopDevice(file string) (string, error) {
	backing, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer backing.Close()
	control, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer control.Close()
	// Another process may take the free device between the two calls: then ask again.
	for attempt := 0; attempt < 10; attempt++ {
		n, err := unix.IoctlRetInt(int(control.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		device := fmt.Sprintf("/dev/loop%d", n)
		if _, err := os.Stat(device); os.IsNotExist(err) {
			// /dev is the host's devtmpfs, which normally has the node already.
			if err := unix.Mknod(device, unix.S_IFBLK|0o660, int(unix.Mkdev(loopMajor, uint32(n)))); err != nil && !os.IsExist(err) {
				return "", fmt.Errorf("creating %s: %w", device, err)
			}
		}
		loop, err := os.OpenFile(device, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		err = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(backing.Fd()))
		loop.Close()
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("LOOP_SET_FD on %s: %w", device, err)
		}
		return device, nil
	}
	return "", errors.New("no free loop device after 10 attempts")
}

func detachLoopDevice(device string) error {
	loop, err := os.OpenFile(device, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer loop.Close()
	// ENXIO: no longer attached. While another opener holds it, the kernel detaches it on their last close.
	if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return err
	}
	return nil
}

// Copies.

// copyTree copies a directory tree as it is: contents, mode (setuid and sticky bits included),
// owner, modification times, symlinks as symlinks, and device nodes and FIFOs as such. Hard links
// become separate files (a snapshot of a test volume does not need them kept), and extended
// attributes, ACLs and sockets are not copied.
func copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, entry := range entries {
			if err := copyTree(filepath.Join(src, entry.Name()), filepath.Join(dst, entry.Name())); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if err := copyFileContent(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return nil // a socket: meaningless without its server
	}
	return copyMetadata(dst, &st)
}

// copyMetadata sets owner before mode (chown clears setuid and setgid) and the times last (a
// directory's mtime changes as its entries are made).
func copyMetadata(dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // a symlink's mode means nothing on Linux
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return err
		}
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, times, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFileContent(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copySparseFile copies a block volume's file, leaving holes where the source reads as zeros so a
// mostly empty volume stays small on disk.
func copySparseFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	buf, zeros := make([]byte, 1<<20), make([]byte, 1<<20)
	var offset int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zeros[:n]) {
			if _, werr := out.WriteAt(buf[:n], offset); werr != nil {
				return werr
			}
		}
		offset += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := out.Truncate(info.Size()); err != nil {
		return err
	}
	return out.Close()
}
