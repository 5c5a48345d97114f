package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

const fakeKubeletVersion = "v1.37.2"

// ensureNode creates (or refreshes) a Node object that looks like a healthy
// node with a kubelet behind it. No kubelet exists: nothing heartbeats, and
// with the node lifecycle controller off nothing notices.
func ensureNode(ctx context.Context, client kubernetes.Interface, name string) error {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	status := corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "fake node"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "fake node"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "fake node"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "fake node, no kubelet"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion:          fakeKubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
			ContainerRuntimeVersion: "fake://0.0.0",
			OSImage:                 "ferry fake node",
		},
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		},
		Status: status,
	}
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	// Status may be dropped on create; set it explicitly.
	created.Status = status
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of node %s: %w", name, err)
	}
	return nil
}

// podAgent does the little of a kubelet's job that the API needs to make
// progress: it finishes the deletion of pods bound to our fake nodes (the
// kubelet normally confirms it with a zero grace period; without that, such
// pods and their namespaces would stay Terminating forever) and, with
// markRunning, reports those pods Running and Ready.
type podAgent struct {
	client      kubernetes.Interface
	nodes       map[string]bool
	markRunning bool
	ipCounter   atomic.Uint32
}

func runPodAgent(ctx context.Context, client kubernetes.Interface, nodes []string, markRunning bool) error {
	a := &podAgent{client: client, nodes: map[string]bool{}, markRunning: markRunning}
	for _, n := range nodes {
		a.nodes[n] = true
	}
	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	informer := factory.Core().V1().Pods().Informer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { a.handle(ctx, obj) },
		UpdateFunc: func(_, obj interface{}) { a.handle(ctx, obj) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

func (a *podAgent) handle(ctx context.Context, obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" || !a.nodes[pod.Spec.NodeName] {
		return
	}
	if pod.DeletionTimestamp != nil {
		zero := int64(0)
		uid := pod.UID
		err := a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			klog.V(2).InfoS("fake kubelet: delete pod", "pod", klog.KObj(pod), "err", err)
		}
		return
	}
	if !a.markRunning || pod.Status.Phase != corev1.PodPending && pod.Status.Phase != "" {
		return
	}
	updated := pod.DeepCopy()
	now := metav1.Now()
	n := a.ipCounter.Add(1)
	updated.Status.Phase = corev1.PodRunning
	updated.Status.HostIP = "127.0.0.1"
	updated.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	ip := fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+2)
	updated.Status.PodIP = ip
	updated.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	updated.Status.StartTime = &now
	updated.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.PodReadyToStartContainers, corev1.ContainersReady, corev1.PodReady} {
		updated.Status.Conditions = append(updated.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	updated.Status.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		updated.Status.InitContainerStatuses = append(updated.Status.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true,
			ContainerID: fmt.Sprintf("fake://%s/%s", pod.UID, c.Name),
			State:       corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}},
		})
	}
	updated.Status.ContainerStatuses = nil
	started := true
	for _, c := range pod.Spec.Containers {
		updated.Status.ContainerStatuses = append(updated.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: &started,
			ContainerID: fmt.Sprintf("fake://%s/%s", pod.UID, c.Name),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	if _, err := a.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.V(2).InfoS("fake kubelet: update pod status", "pod", klog.KObj(pod), "err", err)
	}
}
