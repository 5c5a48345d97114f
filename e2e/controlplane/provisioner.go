package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// provisionerClass is the StorageClass the hostPath provisioner serves; provisionerName its
// provisioner field.
const (
	provisionerClass = "standard"
	provisionerName  = "sandbox.ferry.dev/hostpath"
)

// ensureStorageClass creates the provisioner's StorageClass, marked the cluster's default, with
// Immediate binding (a sandbox cluster has one node, which reaches every directory).
func ensureStorageClass(ctx context.Context, client kubernetes.Interface) error {
	immediate := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        provisionerClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &immediate,
	}
	_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// runProvisioner provisions a hostPath PV for every pending PVC of provisionerClass: a directory
// dir/<namespace>-<pvc name>-<uid[:8]>, mode 0777 (as Rancher's local-path provisioner does, so a
// non-root pod can write to its volume's root), bound to the claim by claimRef. A released PV (its
// claim deleted, reclaim policy Delete) is deleted together with its directory. This is a stand-in
// for a cloud's dynamic provisioner; kube-controller-manager's binder does the binding.
func runProvisioner(ctx context.Context, client kubernetes.Interface, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hostPath provisioner directory: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	onClaim := func(obj interface{}) {
		if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			provision(ctx, client, dir, pvc)
		}
	}
	onVolume := func(obj interface{}) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok {
			reclaim(ctx, client, dir, pv)
		}
	}
	if _, err := claims.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onClaim, UpdateFunc: func(_, obj interface{}) { onClaim(obj) },
	}); err != nil {
		return err
	}
	if _, err := volumes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onVolume, UpdateFunc: func(_, obj interface{}) { onVolume(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

func provision(ctx context.Context, client kubernetes.Interface, dir string, pvc *corev1.PersistentVolumeClaim) {
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	if class != provisionerClass || pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
		return
	}
	name := "pvc-" + string(pvc.UID)
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-%s", pvc.Namespace, pvc.Name, string(pvc.UID)[:8]))
	if err := os.MkdirAll(path, 0o777); err != nil {
		klog.ErrorS(err, "hostPath provisioner: mkdir", "path", path)
		return
	}
	_ = os.Chmod(path, 0o777) // MkdirAll's mode is filtered by the umask
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	accessModes := pvc.Spec.AccessModes
	if len(accessModes) == 0 {
		accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   accessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              provisionerClass,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
		},
	}
	if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		klog.ErrorS(err, "hostPath provisioner: create PV", "pvc", klog.KObj(pvc))
	}
}

func reclaim(ctx context.Context, client kubernetes.Interface, dir string, pv *corev1.PersistentVolume) {
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.HostPath == nil {
		return
	}
	path := pv.Spec.HostPath.Path
	if filepath.Dir(path) != dir {
		return
	}
	if err := os.RemoveAll(path); err != nil {
		klog.ErrorS(err, "hostPath provisioner: remove", "path", path)
		return
	}
	if err := client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		klog.ErrorS(err, "hostPath provisioner: delete PV", "pv", pv.Name)
	}
}
