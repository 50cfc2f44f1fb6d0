package kubelet

// KillServer makes a GPU's gRPC Serve fail, as a dying listener does: its socket file stays.
func (m *Manager) KillServer(index int) {
	p := m.byIndex[index]
	p.mu.Lock()
	lis := p.listener
	p.mu.Unlock()
	_ = lis.Close()
}
